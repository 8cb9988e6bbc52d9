package state

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/job"
)

// benchJob is a job of realistic size.
func benchJob(now time.Time, i int, s job.State) *job.Job {
	return &job.Job{
		ID:                     job.NewID(now),
		Policy:                 fmt.Sprintf("policy-%d", i%20),
		SourceRegion:           "cn-hangzhou",
		SourceImageID:          fmt.Sprintf("m-bp1%015d", i/8),
		SourceImageName:        "ubuntu-22.04-golden-2026-11",
		SizeGiB:                40,
		DestinationRegion:      []string{"cn-beijing", "cn-shanghai", "cn-shenzhen", "eu-central-1", "us-west-1", "ap-southeast-1", "cn-hongkong", "ap-northeast-1"}[i%8],
		DestinationImageName:   "ubuntu-22.04-golden-2026-11",
		DestinationDescription: "copied by replicatord",
		Tags:                   map[string]string{"team": "infra", "env": "prod"},
		State:                  s,
		Attempts:               1,
		CreateTime:             now,
	}
}

// BenchmarkUpdateParallel measures durable state transitions per second
// with 64 concurrent writers, which group commit turns into few fsyncs.
// jobs=64 gives each writer its own job; jobs=4096 spreads the same load
// over a larger set, so each commit dirties more pages.
func BenchmarkUpdateParallel(b *testing.B) {
	for _, n := range []int{64, 4096} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) { benchUpdateParallel(b, n) })
	}
}

func benchUpdateParallel(b *testing.B, n int) {
	d, fc := testStore(b, Options{})
	ctx := context.Background()
	const workers = 64
	jobs := make([]*job.Job, n)
	for i := range jobs {
		fc.Step(time.Millisecond)
		jobs[i] = benchJob(fc.Now(), i, job.StateWaiting)
	}
	mustCreate(b, d, jobs...)
	var next atomic.Int64
	b.SetParallelism((workers + 1) / 2) // GOMAXPROCS is 2 here: 64 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := next.Add(1)
		for i := int64(0); pb.Next(); i++ {
			id := jobs[(w+i*workers)%int64(len(jobs))].ID
			// WAITING <-> COPYING: a legal transition every time.
			if _, err := d.Update(ctx, id, func(j *job.Job) error {
				if j.State == job.StateWaiting {
					j.State = job.StateCopying
				} else {
					j.State = job.StateWaiting
				}
				j.ProgressPercent = (j.ProgressPercent + 1) % 100
				return nil
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}

// BenchmarkUpdateSerial is one writer at a time: the cost of one fsync'ed
// transaction, for comparison with BenchmarkUpdateParallel.
func BenchmarkUpdateSerial(b *testing.B) {
	d, fc := testStore(b, Options{})
	j := benchJob(fc.Now(), 0, job.StateWaiting)
	mustCreate(b, d, j)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Update(context.Background(), j.ID, func(j *job.Job) error { j.ProgressPercent = int32(i % 100); j.Retries++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}

// BenchmarkWatchFanout: 1,000 watchers, each change delivered to all. The
// latency of an event runs from when the writer applied it (stamped into
// the job by the update function) to its receipt by a watcher, so it
// includes the fsync, publishing and the fan-out.
func BenchmarkWatchFanout(b *testing.B) {
	const watchers = 1000
	d, fc := testStore(b, Options{})
	ctx := context.Background()
	j := benchJob(fc.Now(), 0, job.StateWaiting)
	mustCreate(b, d, j)

	lat := make([][]time.Duration, watchers)
	var wg sync.WaitGroup
	start := d.Revision()
	for i := 0; i < watchers; i++ {
		w, err := d.Watch(ctx, start)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			for n := 0; n < b.N; n++ {
				ev, ok := <-w.Events()
				if !ok {
					b.Errorf("watcher ended: %v", w.Err())
					return
				}
				sent, _ := strconv.ParseInt(ev.Job.CloudStatus, 10, 64)
				lat[i] = append(lat[i], time.Duration(time.Now().UnixNano()-sent))
			}
		}()
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		if _, err := d.Update(ctx, j.ID, func(j *job.Job) error {
			j.CloudStatus = strconv.FormatInt(time.Now().UnixNano(), 10)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(q(1), "max_ms")
	b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "deliveries/s")
}

// fill100k writes n jobs, about 1% of them non-terminal, in a few large
// transactions, and returns the time it took.
func fill(b *testing.B, d *DB, n int) time.Duration {
	begin := time.Now()
	fc := clock.NewFake(epoch)
	const chunk = 10000
	for off := 0; off < n; off += chunk {
		var jobs []*job.Job
		for i := off; i < off+chunk && i < n; i++ {
			fc.Step(time.Millisecond)
			s := job.StateSucceeded
			switch {
			case i%100 == 0:
				s = job.StateCopying
			case i%17 == 0:
				s = job.StateFailed
			}
			jobs = append(jobs, benchJob(fc.Now(), i, s))
		}
		mustCreate(b, d, jobs...)
	}
	return time.Since(begin)
}

// BenchmarkRestart100k measures what a daemon restart costs before it can
// schedule: Open (lock, freelist, schema check) plus Active, on a file of
// 100,000 jobs of which 1% are active. Each iteration runs in a fresh
// child process so that its peak RSS (which counts the mmapped pages it
// touched) is its own.
func BenchmarkRestart100k(b *testing.B) {
	d, _ := testStore(b, Options{})
	took := fill(b, d, 100000)
	path := d.Path()
	d.Close()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var us, hwm, heap int64
	for i := 0; i < b.N; i++ {
		cmd := helper(b, "restart", path)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("helper: %v: %s", err, out)
		}
		// "active N us X hwm_kib Y heap_kib Z"
		f := strings.Fields(strings.TrimSpace(lastLine(string(out))))
		if len(f) != 8 || f[0] != "active" || f[1] != "1000" {
			b.Fatalf("helper said %q", out)
		}
		u, _ := strconv.ParseInt(f[3], 10, 64)
		h, _ := strconv.ParseInt(f[5], 10, 64)
		p, _ := strconv.ParseInt(f[7], 10, 64)
		us, hwm, heap = us+u, max(hwm, h), max(heap, p)
	}
	b.ReportMetric(float64(us)/float64(b.N)/1000, "reopen+active_ms")
	b.ReportMetric(float64(hwm)/1024, "peak_rss_MiB")
	b.ReportMetric(float64(heap)/1024, "heap_MiB")
	b.ReportMetric(float64(took.Milliseconds()), "fill_ms")
	b.ReportMetric(float64(fi.Size())/(1<<20), "file_MiB")
}

func lastLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	last := ""
	for sc.Scan() {
		last = sc.Text()
	}
	return last
}

// BenchmarkList pages through 20,000 jobs: unfiltered, by an index, and by
// a filter no index serves alone.
func BenchmarkList(b *testing.B) {
	d, _ := testStore(b, Options{})
	fill(b, d, 20000)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		f    Filter
	}{
		{"all", Filter{}},
		{"policy", Filter{Policy: "policy-3"}},
		{"active", Filter{States: []job.State{job.StateCopying}}},
		{"policy+region", Filter{Policy: "policy-3", DestinationRegion: "eu-central-1"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tok := ""
			for i := 0; i < b.N; i++ {
				jobs, next, _, err := d.List(ctx, bc.f, 100, tok)
				if err != nil {
					b.Fatal(err)
				}
				if len(jobs) == 0 && tok == "" {
					b.Fatal("no jobs")
				}
				tok = next // page on, and start over at the end
			}
		})
	}
}

// BenchmarkRetentionSoak is a soak in fast-forward: each iteration is one
// day of a busy fleet, perDay ad-hoc jobs each going QUEUED → SUBMITTING →
// COPYING → SUCCEEDED (four durable writes, 32 writers at a time), after
// which the fake clock moves a day and one retention sweep runs, as the
// daemon's hourly RunRetention would. With retention the file stops
// growing once the first week's jobs start being removed: freed pages are
// reused. "off" keeps every job, for comparison. Run it with a fixed day
// count, e.g. -benchtime 60x; it logs the file size every week.
func BenchmarkRetentionSoak(b *testing.B) {
	for _, keep := range []time.Duration{7 * 24 * time.Hour, 0} {
		name := "retention=7d"
		if keep == 0 {
			name = "retention=off"
		}
		b.Run(name, func(b *testing.B) { benchRetentionSoak(b, keep) })
	}
}

func benchRetentionSoak(b *testing.B, keep time.Duration) {
	const perDay, writers = 400, 32
	d, fc := testStore(b, Options{})
	ctx := context.Background()
	size := func() float64 {
		fi, err := os.Stat(d.Path())
		if err != nil {
			b.Fatal(err)
		}
		return float64(fi.Size()) / (1 << 20)
	}
	var week1, peakAfter float64
	n := 0
	b.ResetTimer()
	for day := 1; day <= b.N; day++ {
		jobs := make([]*job.Job, perDay)
		for i := range jobs {
			fc.Step(time.Millisecond)
			jobs[i] = benchJob(fc.Now(), n, job.StateQueued)
			// Ad-hoc copies (replctl copy, API clients): a policy's newest
			// jobs per source and region stay (see removable).
			jobs[i].Policy = ""
			n++
		}
		mustCreate(b, d, jobs...)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := w; i < perDay; i += writers {
					for _, s := range []job.State{job.StateSubmitting, job.StateCopying, job.StateSucceeded} {
						if _, err := d.Update(ctx, jobs[i].ID, setState(s)); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		fc.Step(24 * time.Hour)
		if keep > 0 {
			Sweep(ctx, d, RetentionOptions{Retention: keep, Clock: fc})
		}
		mib := size()
		switch {
		case day == 7:
			week1 = mib
		case day > 7:
			peakAfter = max(peakAfter, mib)
		}
		if day%7 == 0 || day == b.N {
			// The file grows in large steps (bbolt extends it ahead of
			// need); the page high-water mark shows the growth itself.
			var used int64
			if err := d.view(func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
				b.Fatal(err)
			}
			b.Logf("day %3d: file %5.1f MiB, pages in use up to %5.1f MiB, %d jobs written", day, mib, float64(used)/(1<<20), n)
		}
	}
	b.StopTimer()
	b.ReportMetric(size(), "MiB_final")
	if b.N > 7 {
		b.ReportMetric(week1, "MiB_day7")
		b.ReportMetric(peakAfter, "MiB_peak_after_day7")
	}
}
