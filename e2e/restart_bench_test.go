package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// BenchmarkDaemonRestart100k measures the real daemon binary restarting on
// a state file of 100,000 jobs (1% non-terminal): the time from exec until
// it serves with every non-terminal job tracked again (Start returns only
// then), and its peak RSS.
//
//	go test -run '^$' -bench DaemonRestart100k -benchtime 3x ./e2e
func BenchmarkDaemonRestart100k(b *testing.B) {
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		b.Fatal(err)
	}
	fillStore(b, filepath.Join(data, "state.db"), 100000)
	config := filepath.Join(dir, "config.yaml")
	// Simulated cloud, no policies: the restart itself is measured.
	if err := os.WriteFile(config, []byte("version: 1\ndaemon: {data_dir: data}\ncloud: {provider: simulated}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var ready, hwm []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		begin := time.Now()
		p := startBench(b, config)
		ready = append(ready, float64(time.Since(begin).Milliseconds()))
		hwm = append(hwm, float64(peakRSS(b, p.cmd.Process.Pid))/1024)
		p.stop()
	}
	b.StopTimer()
	b.ReportMetric(median(ready), "ready_ms")
	b.ReportMetric(median(hwm), "peak_rss_MiB")
}

func fillStore(b *testing.B, path string, n int) {
	st, err := state.Open(path, state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now().Add(-time.Hour)
	const chunk = 10000
	for off := 0; off < n; off += chunk {
		jobs := make([]*job.Job, 0, chunk)
		for i := off; i < off+chunk && i < n; i++ {
			j := &job.Job{
				ID:                job.NewID(now.Add(time.Duration(i) * time.Millisecond)),
				Policy:            fmt.Sprintf("policy-%d", i%7),
				SourceRegion:      "cn-hangzhou",
				SourceImageID:     fmt.Sprintf("m-bp1%017d", i%5000),
				SizeGiB:           int64(20 + i%100),
				DestinationRegion: []string{"cn-shanghai", "cn-beijing", "ap-southeast-1"}[i%3],
				State:             job.StateSucceeded,
				CreateTime:        now,
			}
			if i%100 == 0 {
				// Queued, waiting for a retry far ahead: tracked, not acted on.
				j.State = job.StateQueued
				j.NextAttemptTime = now.Add(48 * time.Hour)
			}
			jobs = append(jobs, j)
		}
		if err := st.Create(context.Background(), jobs...); err != nil {
			b.Fatal(err)
		}
	}
}

// startBench runs the daemon and waits for its ready line.
func startBench(b *testing.B, config string) *proc {
	p := start(b, "replicatord", nil, "--config", config)
	p.waitLine("replicatord ready", 60*time.Second)
	return p
}

func peakRSS(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			return kib
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
