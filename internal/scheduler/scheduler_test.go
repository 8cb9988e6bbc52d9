package scheduler

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// At most slots+lookahead copies are in ECS per region; ECS runs `slots`
// and holds the look-ahead as Waiting; the rest stay queued here.
func TestRegionLimitAndLookahead(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(40, 40, 40, 40, 40, 40, 40, 40, 40, 40)}, Options{SlotsPerRegion: 5, Lookahead: 1})
	var jobs []*job.Job
	for i := 0; i < 10; i++ {
		jobs = append(jobs, newJob(i, 40, "cn-shanghai"))
	}
	h.submit(jobs...)
	// Submitted copies are polled once ECS holds them.
	h.runUntil("copies observed", time.Second, 5, func() bool { return h.states(ids(jobs))[job.StateCopying] == 5 })
	st := h.states(ids(jobs))
	if st[job.StateCopying] != 5 || st[job.StateWaiting] != 1 || st[job.StateQueued] != 4 {
		t.Fatalf("states = %v, want 5 COPYING, 1 WAITING, 4 QUEUED", st)
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 6 {
		t.Fatalf("ECS holds %d copies, want 6", n)
	}
	h.runUntil("all copies done", 30*time.Second, 400, h.allTerminal(ids(jobs)))
	if st := h.states(ids(jobs)); st[job.StateSucceeded] != 10 {
		t.Fatalf("states = %v, want 10 SUCCEEDED", st)
	}
	copies := h.copiesIn("cn-shanghai")
	if len(copies) != 10 {
		t.Fatalf("ECS holds %d copies, want exactly 10", len(copies))
	}
	for _, im := range copies {
		if im.Status != cloud.StatusAvailable {
			t.Errorf("copy %s is %s", im.ID, im.Status)
		}
	}
	// Finished copies teach the estimator the route's rate (the emulator
	// copies at 50 MiB/s: 20.5 s per GiB).
	h.s.est.mu.Lock()
	rate, ok := h.s.est.secPerGiB[srcRegion+">cn-shanghai"]
	h.s.est.mu.Unlock()
	if !ok || rate < 15 || rate > 30 {
		t.Fatalf("learned %v s/GiB (known %v), want about 20.5", rate, ok)
	}
}

// Ad-hoc copies go before policy backfill; within a class the longest copy
// goes first.
func TestOrdering(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10, 80, 40, 20)}, Options{SlotsPerRegion: 1, Lookahead: 0})
	// Fill the one slot so that everything after it queues.
	first := newJob(0, 10, "cn-beijing")
	h.submit(first)
	h.settle()
	small := newJob(3, 20, "cn-beijing")
	big := newJob(1, 80, "cn-beijing")
	mid := newJob(2, 40, "cn-beijing")
	policyBig := newJob(1, 80, "cn-beijing")
	policyBig.Policy = "backfill"
	policyBig.SourceImageID = imageID(1)
	h.submit(policyBig, small, mid, big)
	var order []string
	seen := map[string]bool{}
	all := []*job.Job{first, small, big, mid, policyBig}
	h.runUntil("all done", 30*time.Second, 2000, func() bool {
		for _, j := range all {
			if !seen[j.ID] && h.job(j.ID).SubmitTime != (time.Time{}) {
				seen[j.ID] = true
				order = append(order, j.ID)
			}
		}
		return h.allTerminal(ids(all))()
	})
	want := []string{first.ID, big.ID, mid.ID, small.ID, policyBig.ID}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("submit order = %v, want %v (first, ad-hoc longest first, then policy)", order, want)
		}
	}
}

func TestCancelQueuedAndCopying(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(100, 100)}, Options{SlotsPerRegion: 1, Lookahead: 0})
	running := newJob(0, 100, "cn-shanghai")
	queued := newJob(1, 100, "cn-shanghai")
	h.submit(running, queued)
	h.runUntil("copying", time.Second, 10, func() bool { return h.job(running.ID).State == job.StateCopying })

	ctx := context.Background()
	calls := h.emu.Stats().Calls["CancelCopyImage"]
	out, err := h.s.Cancel(ctx, []string{queued.ID})
	if err != nil || out[0].State != job.StateCancelled {
		t.Fatalf("cancel queued: %v %v", out, err)
	}
	h.settle()
	if got := h.emu.Stats().Calls["CancelCopyImage"]; sum(got) != sum(calls) {
		t.Fatalf("a queued job's cancel called ECS: %v", got)
	}

	out, err = h.s.Cancel(ctx, []string{running.ID})
	if err != nil || out[0].State != job.StateCancelling {
		t.Fatalf("cancel copying: %v %v", out, err)
	}
	h.runUntil("cancelled", time.Second, 20, func() bool { return h.job(running.ID).State == job.StateCancelled })
	if n := len(h.copiesIn("cn-shanghai")); n != 0 {
		t.Fatalf("%d copies left after cancel, want 0", n)
	}
	if _, err := h.s.Cancel(ctx, []string{running.ID}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("cancel of a finished job: %v, want FailedPrecondition", err)
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// A copy that ECS reports CreateFailed is deleted and made again, up to
// MaxAttempts; then the job fails with the reason and nothing is left.
func TestCreateFailedRetriedThenFails(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10), CreateFailedRate: 1}, Options{MaxAttempts: 2})
	j := newJob(0, 10, "cn-shanghai")
	h.submit(j)
	h.runUntil("failed", 30*time.Second, 200, h.allTerminal([]string{j.ID}))
	got := h.job(j.ID)
	if got.State != job.StateFailed || got.Attempts != 2 || got.Error == nil || got.Error.Code != "CreateFailed" {
		t.Fatalf("job = %s attempts %d error %+v; want FAILED after 2 attempts with CreateFailed", got.State, got.Attempts, got.Error)
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 0 {
		t.Fatalf("%d failed copies left behind, want 0", n)
	}
}

// A permanent ECS error fails the job at once with ECS's code and message.
func TestPermanentErrorFailsAtOnce(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(300)}, Options{})
	j := newJob(0, 300, "cn-shanghai")
	h.submit(j)
	h.runUntil("failed", time.Second, 5, h.allTerminal([]string{j.ID}))
	got := h.job(j.ID)
	if got.State != job.StateFailed || got.Error == nil || got.Error.Code != "SizeExceed.Image" || got.Error.RequestID == "" {
		t.Fatalf("job = %s %+v; want FAILED with SizeExceed.Image and a RequestId", got.State, got.Error)
	}
	if c := h.emu.Stats().Calls["CopyImage"]; sum(c) != 1 {
		t.Fatalf("CopyImage called %v, want once", c)
	}
}

// With the copy-conflict rule one source image is copied to one region at a
// time, and the scheduler learns the rule from ECS's answer by itself.
func TestCopyConflictLearned(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(20), CopyConflict: true}, Options{})
	var jobs []*job.Job
	for _, r := range []string{"cn-shanghai", "cn-beijing", "cn-shenzhen"} {
		jobs = append(jobs, newJob(0, 20, r))
	}
	h.submit(jobs...)
	maxInFlight := 0
	h.runUntil("all done", 10*time.Second, 1000, func() bool {
		n := 0
		for _, im := range append(append(h.copiesIn("cn-shanghai"), h.copiesIn("cn-beijing")...), h.copiesIn("cn-shenzhen")...) {
			if im.Status == cloud.StatusCreating || im.Status == cloud.StatusWaiting {
				n++
			}
		}
		if n > maxInFlight {
			maxInFlight = n
		}
		return h.allTerminal(ids(jobs))()
	})
	if st := h.states(ids(jobs)); st[job.StateSucceeded] != 3 {
		t.Fatalf("states = %v, want 3 SUCCEEDED", st)
	}
	if maxInFlight != 1 {
		t.Fatalf("%d copies of one source in flight at once, want 1", maxInFlight)
	}
}

// A job found SUBMITTING at start whose copy ECS already holds (the daemon
// died after ECS accepted the copy, before the answer was stored) adopts
// that copy instead of making a second one.
func TestRestartAdoptsAcceptedCopy(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{})
	h.close() // the daemon is gone; the emulator (ECS) stays
	var err error

	// Write the intent as the dead daemon would have, then make the copy in
	// ECS with the intent's token and lineage, as its CopyImage did.
	j := newJob(0, 10, "cn-shanghai")
	j.State = job.StateSubmitting
	j.Attempts = 1
	j.ClientToken = job.Token(j.ID, 1)
	j.CreateTime = epoch
	store := reopen(t, h)
	if err = store.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	store.Close()
	id, err := h.cloud.CopyImage(context.Background(), cloud.CopyRequest{
		SourceRegion: srcRegion, SourceImageID: j.SourceImageID, DestinationRegion: j.DestinationRegion,
		Tags: lineageTags(j, job.DefaultOwner), ClientToken: j.ClientToken,
	})
	if err != nil {
		t.Fatal(err)
	}

	h.open(Options{})
	h.runUntil("done", 30*time.Second, 100, h.allTerminal([]string{j.ID}))
	got := h.job(j.ID)
	if got.State != job.StateSucceeded || got.DestinationImageID != id {
		t.Fatalf("job = %s copy %s, want SUCCEEDED with the existing copy %s", got.State, got.DestinationImageID, id)
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 1 {
		t.Fatalf("%d copies, want exactly 1", n)
	}
}

// After the state file is lost, Adopt finds the copy in flight by its
// lineage tags and follows it; no second copy is made.
func TestAdoptAfterLostStateFile(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(40, 10)}, Options{})
	running := newJob(0, 40, "cn-shanghai")
	done := newJob(1, 10, "cn-shanghai")
	h.submit(running, done)
	h.runUntil("one done, one copying", 10*time.Second, 200, func() bool {
		return h.job(done.ID).State == job.StateSucceeded && h.job(running.ID).State == job.StateCopying
	})
	h.close()
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	h.open(Options{})
	n, err := h.s.Adopt(context.Background(), []string{"cn-shanghai", "cn-beijing"})
	if err != nil || n != 2 {
		t.Fatalf("Adopt = %d, %v; want 2 jobs", n, err)
	}
	if n, _ := h.s.Adopt(context.Background(), []string{"cn-shanghai"}); n != 0 {
		t.Fatalf("a second Adopt created %d jobs, want 0", n)
	}
	h.runUntil("adopted copy done", 10*time.Second, 500, h.allTerminal([]string{running.ID, done.ID}))
	for _, id := range []string{running.ID, done.ID} {
		if j := h.job(id); j.State != job.StateSucceeded || j.SourceImageID == "" {
			t.Fatalf("adopted job %s = %s from %q", id, j.State, j.SourceImageID)
		}
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 2 {
		t.Fatalf("%d copies, want exactly 2", n)
	}
}

// Transient errors back a job off exponentially, keeping its intent and
// token; once the fault clears it succeeds with one copy. Past MaxRetries it
// fails with the last ECS code.
func TestRetryBackoff(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10, 10)}, Options{RetryBase: time.Second, RetryMax: time.Minute, MaxRetries: 4})
	h.emu.SetFaults("CopyImage", ecsemu.Fault{InternalErrorRate: 1})
	j := newJob(0, 10, "cn-shanghai")
	h.submit(j)
	var delays []time.Duration
	last := int32(0)
	h.runUntil("three retries", 500*time.Millisecond, 400, func() bool {
		got := h.job(j.ID)
		if got.Retries > last {
			last = got.Retries
			// The store stamps the update that set the backoff.
			delays = append(delays, got.NextAttemptTime.Sub(got.UpdateTime))
		}
		return got.Retries >= 3
	})
	// Base 1s doubling, with at most 20% jitter either way.
	for i, d := range delays {
		want := time.Second << i
		if d < want*8/10 || d > want*12/10 {
			t.Fatalf("backoff %d = %v, want %v ±20%% (all: %v)", i, d, want, delays)
		}
	}
	if got := h.job(j.ID); got.State != job.StateSubmitting || got.Error == nil || got.Error.Code != "InternalError" || !got.Error.Retryable {
		t.Fatalf("job during backoff = %s %+v", got.State, got.Error)
	}
	h.emu.SetFaults("CopyImage", ecsemu.Fault{})
	h.runUntil("done", 10*time.Second, 300, h.allTerminal([]string{j.ID}))
	if got := h.job(j.ID); got.State != job.StateSucceeded || got.Attempts != 1 {
		t.Fatalf("job = %s after %d attempts, want SUCCEEDED in one", got.State, got.Attempts)
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 1 {
		t.Fatalf("%d copies, want 1", n)
	}

	// A fault that never clears fails the job after MaxRetries.
	h.emu.SetFaults("CopyImage", ecsemu.Fault{UnavailableRate: 1})
	k := newJob(1, 10, "cn-beijing")
	h.submit(k)
	h.runUntil("failed", 30*time.Second, 400, h.allTerminal([]string{k.ID}))
	if got := h.job(k.ID); got.State != job.StateFailed || got.Error.Code != "ServiceUnavailable" {
		t.Fatalf("job = %s %+v, want FAILED with ServiceUnavailable", got.State, got.Error)
	}
}

// A Throttling answer slows the whole action down (multiplicative
// decrease) and the throttled jobs wait and retry instead of failing.
func TestThrottleBacksOffAction(t *testing.T) {
	var imgs []int64
	for i := 0; i < 12; i++ {
		imgs = append(imgs, 10)
	}
	h := newHarness(t, ecsemu.Config{Images: images(imgs...), ThrottleRate: 6}, Options{APIRate: 100})
	before := h.s.rl.Rate("CopyImage")
	var jobs []*job.Job
	for i := range imgs {
		jobs = append(jobs, newJob(i, 10, []string{"cn-shanghai", "cn-beijing", "cn-shenzhen"}[i%3]))
	}
	h.submit(jobs...)
	// Workers now wait on the lowered rate (fake clock), so the scheduler
	// does not settle: wait for the throttles to be recorded instead.
	h.waitFor("a throttled job", func() bool {
		for _, j := range jobs {
			if e := h.job(j.ID).Error; e != nil && e.Code == "Throttling.User" {
				return true
			}
		}
		return false
	})
	if after := h.s.rl.Rate("CopyImage"); after >= before {
		t.Fatalf("CopyImage rate %v after throttling, was %v: want it lowered", after, before)
	}
	// Many more throttles must not fail any job.
	for i := 0; i < 40; i++ {
		h.clk.Step(30 * time.Second)
		h.waitFor("workers waiting", func() bool { st := h.s.queue.Stats(); return st.Ready == 0 })
	}
	waiting := 0
	for _, j := range jobs {
		got := h.job(j.ID)
		if got.State == job.StateFailed {
			t.Fatalf("job failed by throttling: %+v", got.Error)
		}
		// Throttles are flow control: they must not use up the budget that
		// a later transient failure (5xx, timeout) would need.
		if got.Retries != 0 {
			t.Fatalf("job %s throttled only, has used %d of its retries", got.ID, got.Retries)
		}
		if got.Error != nil && got.Error.Code == "Throttling.User" {
			waiting++
		}
	}
	if waiting == 0 {
		t.Fatalf("no job records the throttle it waits out")
	}
}

// Fairness: within one priority, the policy with the fewest copies in the
// region goes next, so a huge policy cannot starve a small one.
func TestFairnessBetweenPolicies(t *testing.T) {
	// The small policy's copy is the shortest: longest-first alone would
	// put it last.
	h := newHarness(t, ecsemu.Config{Images: images(50, 50, 50, 50, 50, 5)}, Options{SlotsPerRegion: 1, Lookahead: 0})
	var big []*job.Job
	for i := 0; i < 5; i++ {
		j := newJob(i, 50, "cn-shanghai")
		j.Policy = "huge"
		big = append(big, j)
	}
	h.submit(big...)
	h.settle()
	small := newJob(5, 5, "cn-shanghai")
	small.Policy = "small"
	h.submit(small)
	var order []string
	seen := map[string]bool{}
	all := append(append([]*job.Job{}, big...), small)
	h.runUntil("all done", 10*time.Second, 2000, func() bool {
		for _, j := range all {
			if !seen[j.ID] && !h.job(j.ID).SubmitTime.IsZero() {
				seen[j.ID] = true
				order = append(order, h.job(j.ID).Policy)
			}
		}
		return h.allTerminal(ids(all))()
	})
	if len(order) < 2 || order[1] != "small" {
		t.Fatalf("admission order by policy = %v; the small policy should go second, not after the huge one", order)
	}
}

// Retry gives a failed job a new attempt with its own token and a fresh
// attempt budget.
func TestRetryFailedJob(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{MaxRetries: 1, MaxAttempts: 1})
	h.emu.SetFaults("CopyImage", ecsemu.Fault{InternalErrorRate: 1})
	j := newJob(0, 10, "cn-shanghai")
	h.submit(j)
	h.runUntil("failed", 10*time.Second, 100, h.allTerminal([]string{j.ID}))
	failed := h.job(j.ID)
	if failed.State != job.StateFailed {
		t.Fatalf("job = %s", failed.State)
	}
	if _, err := h.s.Retry(context.Background(), []string{j.ID}); err != nil {
		t.Fatal(err)
	}
	h.emu.SetFaults("CopyImage", ecsemu.Fault{})
	h.runUntil("done", 10*time.Second, 300, h.allTerminal([]string{j.ID}))
	got := h.job(j.ID)
	if got.State != job.StateSucceeded || got.Attempts != failed.Attempts+1 || got.ClientToken == failed.ClientToken {
		t.Fatalf("retried job = %s attempts %d token %q (failed with %d %q)", got.State, got.Attempts, got.ClientToken, failed.Attempts, failed.ClientToken)
	}
	if _, err := h.s.Retry(context.Background(), []string{j.ID}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("retry of a SUCCEEDED job: %v", err)
	}
}

// A copy that disappears from ECS while in flight (cancelled or deleted
// outside replicatord) is made again once the listing delay has passed.
func TestVanishedCopyRecopied(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(100)}, Options{VanishGrace: time.Minute})
	j := newJob(0, 100, "cn-shanghai")
	h.submit(j)
	h.runUntil("copying", time.Second, 20, func() bool { return h.job(j.ID).State == job.StateCopying })
	first := h.job(j.ID).DestinationImageID
	if err := h.cloud.CancelCopyImage(context.Background(), "cn-shanghai", first); err != nil {
		t.Fatal(err)
	}
	h.runUntil("done", 30*time.Second, 500, h.allTerminal([]string{j.ID}))
	got := h.job(j.ID)
	if got.State != job.StateSucceeded || got.DestinationImageID == first || got.Attempts != 2 {
		t.Fatalf("job = %s copy %s attempts %d; want SUCCEEDED with a second copy", got.State, got.DestinationImageID, got.Attempts)
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 1 {
		t.Fatalf("%d copies, want 1", n)
	}
}

// A job cancelled while SUBMITTING, with no copy in ECS, ends CANCELLED
// (a chaos run found it stuck: the transition was not allowed).
func TestCancelWhileSubmitting(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{})
	h.emu.SetFaults("CopyImage", ecsemu.Fault{InternalErrorRate: 1})
	j := newJob(0, 10, "cn-shanghai")
	h.submit(j)
	h.runUntil("retrying", 500*time.Millisecond, 20, func() bool { return h.job(j.ID).Retries > 0 })
	if out, err := h.s.Cancel(context.Background(), []string{j.ID}); err != nil || out[0].State != job.StateSubmitting || !out[0].CancelRequested {
		t.Fatalf("cancel: %+v %v", out, err)
	}
	h.runUntil("cancelled", 500*time.Millisecond, 20, h.allTerminal([]string{j.ID}))
	if got := h.job(j.ID); got.State != job.StateCancelled {
		t.Fatalf("job = %s, want CANCELLED", got.State)
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 0 {
		t.Fatalf("%d copies of a cancelled job", n)
	}
}

// Calls through Paced share the scheduler's token buckets: a throttle seen
// by the reconciler's or the API's call slows the action for the copy
// workers too.
func TestPacedSharesFlowControl(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10), ThrottleRate: 3}, Options{APIRate: 100})
	ctx := context.Background()
	q := cloud.ImageQuery{Region: srcRegion, IDs: []string{imageID(0)}}
	p := h.s.Paced()
	for i := 0; i < 3; i++ {
		if _, err := p.DescribeImages(ctx, q); err != nil {
			t.Fatalf("call %d within the emulator's budget: %v", i, err)
		}
	}
	before := h.s.rl.Rate("DescribeImages")
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := p.DescribeImages(cctx, q) // throttled, then paced on the (fake) clock
	if err == nil {
		t.Fatal("a call beyond the emulator's budget succeeded")
	}
	if after := h.s.rl.Rate("DescribeImages"); after >= before {
		t.Fatalf("rate %v after a throttle through Paced, was %v", after, before)
	}
}
