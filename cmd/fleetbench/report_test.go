package main

import (
	"testing"
	"time"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
)

// The script's row is the median and the range over its runs, like the
// daemon's, for every figure; an urgent copy never seen started is said.
func TestScriptRowMedianAndRange(t *testing.T) {
	lb := 10 * time.Hour
	run := func(makespan time.Duration, ok, failedAttempts, failed int, lag, urgent time.Duration, seen bool) peerRun {
		return peerRun{
			Makespan: makespan, Succeeded: ok, FailedAttempts: failedAttempts, Failed: failed, Refused: map[string]int{},
			Lags:   []time.Duration{lag, lag, 2 * lag},
			Calls:  calls{"CopyImage": {"200": int64(ok + failedAttempts)}, "DescribeImages": {"200": int64(ok), "Throttling.User": 2}},
			Urgent: urgent, UrgentSeen: seen,
		}
	}
	runs := []peerRun{
		run(10*time.Hour+6*time.Minute, 100, 10, 0, time.Minute, 20*time.Minute, true), // 1.010
		run(10*time.Hour, 98, 12, 2, 3*time.Minute, 40*time.Minute, true),              // 1.000
		run(10*time.Hour+18*time.Minute, 100, 11, 0, 2*time.Minute, 0, false),          // 1.030
	}
	r := scriptRow(runs, lb, true)
	for _, c := range []struct{ cell, want string }{
		{r.ratio, "1.010 (1.000–1.030)"},
		{r.makespan, "10.10 h (10.00 h–10.30 h)"},
		{r.copies, "100 (98–100) / 11 (10–12) / 0 (0–2) (0)"},
		{r.lag, "2.0 min (1.0 min–3.0 min) / 4.0 min (2.0 min–6.0 min)"},
		{r.urgent, "30.0 min (20.0 min–40.0 min), never started in 1 of 3 runs"},
		{r.throttled, "2 (median run: 2 Throttling.User)"},
		{r.cpu, "-"},
	} {
		if c.cell != c.want {
			t.Errorf("cell %q, want %q", c.cell, c.want)
		}
	}
	// Calls per copy ok: the split is the median run's (by makespan, the
	// first one: 110 CopyImage and 100 DescribeImages plus 2 throttled
	// over 100 ok); the total is each run's: 2.12, 210/98 and 2.13.
	if r.perCopy != "1.10 / 1.02 / 0.00 = 2.12 (total 2.13 (2.12–2.14))" {
		t.Errorf("calls per copy %q", r.perCopy)
	}
	// Equal runs show no range.
	one := scriptRow([]peerRun{runs[0], runs[0]}, lb, true)
	if one.ratio != "1.010" || one.urgent != "20.0 min" {
		t.Errorf("two equal runs: ratio %q, urgent %q", one.ratio, one.urgent)
	}
}

// The daemon's row counts copies ok, failed attempts and final failures
// of every run, and marks the ratio when copies were given up.
func TestDaemonRowFailedCopyAccounting(t *testing.T) {
	run := func(makespan time.Duration, ok, attempts, failed, throttled int) daemonRun {
		return daemonRun{
			Makespan: makespan, Drive: &driveResult{Succeeded: ok, Failed: failed, FailedThrottle: throttled, UrgentJob: "j-urgent"},
			Calls: calls{"CopyImage": {"200": int64(ok + attempts)}}, FailedAttempts: attempts,
		}
	}
	h := time.Hour
	r := daemonRow("replicatord", []daemonRun{run(10*h, 1201, 120, 0, 0), run(10*h+30*time.Minute, 1199, 125, 2, 1), run(10*h+6*time.Minute, 1201, 118, 0, 0)}, 10*h)
	// The throttled count in brackets is the median run's (the third).
	if want := "1201 (1199–1201) / 120 (118–125) / 0 (0–2) (0)"; r.copies != want {
		t.Errorf("copies %q, want %q", r.copies, want)
	}
	if r.ratio != "1.010 (1.000–1.050)" {
		t.Errorf("ratio %q: the median run gave nothing up", r.ratio)
	}
	if r.urgent != "never started in 3 of 3 runs" {
		t.Errorf("urgent %q: no run saw the urgent job COPYING", r.urgent)
	}
	bad := daemonRow("replicatord", []daemonRun{run(10*h, 1199, 125, 2, 1)}, 10*h)
	if bad.ratio != "1.000 *" || bad.copies != "1199 / 125 / 2 (1)" {
		t.Errorf("a run with final failures: ratio %q copies %q", bad.ratio, bad.copies)
	}
}

// The urgent copy's start, as the client sees it, is the first Watch
// message showing its job COPYING; a job whose COPYING was coalesced away
// counts from SUCCEEDED; WAITING does not count.
func TestWatcherRecordsWhenAJobStarts(t *testing.T) {
	w := newWatcher()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	msg := func(id string, st pb.JobState, after time.Duration) {
		w.observe(&pb.Job{Id: id, State: st}, t0.Add(after))
	}
	msg("a", pb.JobState_JOB_STATE_QUEUED, 0)
	msg("a", pb.JobState_JOB_STATE_WAITING, time.Second)
	msg("a", pb.JobState_JOB_STATE_COPYING, 3*time.Second)
	msg("a", pb.JobState_JOB_STATE_COPYING, 4*time.Second) // progress
	msg("a", pb.JobState_JOB_STATE_SUCCEEDED, 9*time.Second)
	msg("b", pb.JobState_JOB_STATE_WAITING, time.Second)
	msg("b", pb.JobState_JOB_STATE_SUCCEEDED, 5*time.Second)
	msg("c", pb.JobState_JOB_STATE_WAITING, time.Second)
	msg("c", pb.JobState_JOB_STATE_FAILED, 6*time.Second)
	if got := w.startedAt["a"].Sub(t0); got != 3*time.Second {
		t.Errorf("a started at %s, want its first COPYING at 3s", got)
	}
	if got := w.startedAt["b"].Sub(t0); got != 5*time.Second {
		t.Errorf("b started at %s, want SUCCEEDED at 5s", got)
	}
	if _, ok := w.startedAt["c"]; ok {
		t.Errorf("c never copied, but has a start")
	}
	if got := w.termAt["a"].Sub(t0); got != 9*time.Second {
		t.Errorf("a terminal at %s, want 9s", got)
	}
}

// cover counts the fewest polls that see every end within the lag:
// ends close together share a poll, and an end just past a poll's window
// needs one of its own.
func TestCoverCountsTheFewestPolls(t *testing.T) {
	at := func(mins ...float64) []replayedCopy {
		var cs []replayedCopy
		for _, m := range mins {
			cs = append(cs, replayedCopy{end: time.Duration(m * float64(time.Minute))})
		}
		return cs
	}
	for _, c := range []struct {
		ends []float64
		want int
	}{
		{nil, 0},
		{[]float64{5}, 1},
		{[]float64{0, 15, 15.1}, 2},            // a poll at 15 sees 0 and 15, not 15.1
		{[]float64{40, 0, 3, 14, 20, 29.5}, 3}, // unsorted: {0, 3, 14}, {20, 29.5}, {40}
		{[]float64{0, 16, 32, 48}, 4},          // evenly spread beyond the lag: one each
	} {
		if got := cover(at(c.ends...), 15*time.Minute); got != c.want {
			t.Errorf("cover(%v) = %d, want %d", c.ends, got, c.want)
		}
	}
}

// workBound is the busiest region's slot time over its slots, never below
// the fleet's own bound: a client whose failed attempts add work is
// measured against the work it made ECS do.
func TestWorkBoundCountsFailedAttempts(t *testing.T) {
	b := bound{Makespan: 10 * time.Hour, Region: "cn-shanghai"}
	stats := []regionStat{{Region: "cn-shanghai", Busy: 50 * time.Hour}, {Region: "cn-beijing", Busy: 55 * time.Hour}}
	if got, r := workBound(stats, 5, b); got != 11*time.Hour || r != "cn-beijing" {
		t.Errorf("workBound = %s in %s, want 11h in cn-beijing (55 slot-hours over 5 slots)", got, r)
	}
	if got, r := workBound(stats[:1], 5, b); got != 10*time.Hour || r != "cn-shanghai" {
		t.Errorf("workBound with no extra work = %s in %s, want the fleet's bound, 10h in cn-shanghai", got, r)
	}
}
