package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
)

// BenchmarkDaemonWatch100k measures the memory the real daemon binary adds
// to serve 10 concurrent unfiltered Watches on a state file of 100,000
// jobs, each read through its snapshot: its VmRSS (from /proc) once ready,
// the highest VmRSS sampled while the snapshots stream, and the difference.
// The clients run in this process, so the daemon's figures are its own.
//
//	go test -run '^$' -bench DaemonWatch100k -benchtime 1x ./e2e
func BenchmarkDaemonWatch100k(b *testing.B) {
	const jobs, watchers = 100000, 10
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		b.Fatal(err)
	}
	fillStore(b, filepath.Join(data, "state.db"), jobs)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte("version: 1\ndaemon: {data_dir: data}\ncloud: {provider: simulated}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	p := startBench(b, config)
	defer p.stop()
	pid := p.cmd.Process.Pid
	conn, err := grpc.NewClient("unix://"+filepath.Join(data, "replicatord.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewReplicatorServiceClient(conn)

	var base, peak, added []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := procKiB(b, pid, "VmRSS:")
		top := before
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					top = max(top, procKiB(b, pid, "VmRSS:"))
				}
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, watchers)
		for range watchers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- watchSnapshot(client, jobs)
			}()
		}
		wg.Wait()
		close(done)
		<-sampled
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		top = max(top, procKiB(b, pid, "VmRSS:"))
		base = append(base, float64(before)/1024)
		peak = append(peak, float64(top)/1024)
		added = append(added, float64(top-before)/1024)
	}
	b.StopTimer()
	b.ReportMetric(median(base), "ready_rss_MiB")
	b.ReportMetric(median(peak), "peak_rss_MiB")
	b.ReportMetric(median(added), "added_rss_MiB")
	b.ReportMetric(float64(procKiB(b, pid, "VmHWM:"))/1024, "hwm_MiB")
}

// watchSnapshot reads one unfiltered Watch up to its snapshot_complete and
// checks that it held every job.
func watchSnapshot(client pb.ReplicatorServiceClient, want int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stream, err := client.Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		return err
	}
	n := 0
	for {
		m, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("watch after %d jobs: %w", n, err)
		}
		if m.GetSnapshotComplete() {
			if n != want {
				return fmt.Errorf("snapshot held %d jobs, want %d", n, want)
			}
			return nil
		}
		n++
	}
}

// procKiB reads one "Vm...:" line of /proc/<pid>/status, in KiB.
func procKiB(b *testing.B, pid int, key string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Error(err)
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			return kib
		}
	}
	b.Errorf("no %s in /proc/%d/status", key, pid)
	return 0
}
