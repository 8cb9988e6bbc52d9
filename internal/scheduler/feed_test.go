package scheduler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// passive returns a second scheduler on the harness's store that is never
// started, as on an HA follower. It has no cloud provider at all: a call
// to the cloud would panic and fail the test.
func (h *harness) passive() *Scheduler {
	h.t.Helper()
	p := New(h.store, nil, Options{Clock: h.clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Stop(ctx)
	})
	return p
}

// copiesOf counts the copies in region made for job id.
func (h *harness) copiesOf(region, id string) int {
	n := 0
	for _, im := range h.copiesIn(region) {
		if im.Tags[job.TagJobID] == id {
			n++
		}
	}
	return n
}

// TestPassiveWritesLeaderCarriesOut: two schedulers on one store, as two
// replicas of an HA deployment. The passive one takes the API's Submit,
// SubmitRequest and Cancel and only writes the store; the started one
// picks every change up from the feed and carries the jobs through against
// the emulator: the jobs end SUCCEEDED or CANCELLED, with exactly one copy
// per succeeded job and none of the cancelled ones (the cancel of a COPYING
// job removes its copy).
func TestPassiveWritesLeaderCarriesOut(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(100, 10, 10, 10)}, Options{SlotsPerRegion: 1})
	p := h.passive()
	ctx := context.Background()
	const region = "cn-shanghai"

	copying := newJob(0, 100, region) // the largest: admitted first
	queued := newJob(1, 10, region)   // waits behind it (one slot)
	if err := p.Submit(ctx, copying, queued); err != nil {
		t.Fatal(err)
	}
	a, b := newJob(2, 10, region), newJob(3, 10, region)
	res, err := p.SubmitRequest(ctx, &state.Request{ID: "req-1", Fingerprint: "f", Jobs: []*job.Job{a, b}})
	if err != nil || len(res.Created) != 2 {
		t.Fatalf("passive SubmitRequest: %+v %v", res, err)
	}
	if p.RegionLoad()[region] != [2]int{} {
		t.Fatalf("the passive scheduler tracks jobs: %v", p.RegionLoad())
	}

	h.runUntil("copying", time.Second, 30, func() bool { return h.job(copying.ID).State == job.StateCopying })
	if got := h.job(queued.ID).State; got != job.StateQueued {
		t.Fatalf("second job = %s, want QUEUED behind the only slot", got)
	}
	out, err := p.Cancel(job.WithActor(ctx, "api (follower)"), []string{copying.ID, queued.ID})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].State != job.StateCancelling || !out[0].CancelRequested || out[1].State != job.StateCancelled {
		t.Fatalf("passive cancel answered %s/%v and %s, want CANCELLING with the request, and CANCELLED",
			out[0].State, out[0].CancelRequested, out[1].State)
	}

	all := []string{copying.ID, queued.ID, a.ID, b.ID}
	h.runUntil("all done", 10*time.Second, 500, h.allTerminal(all))
	want := map[string]job.State{copying.ID: job.StateCancelled, queued.ID: job.StateCancelled, a.ID: job.StateSucceeded, b.ID: job.StateSucceeded}
	for id, st := range want {
		got := h.job(id)
		if got.State != st {
			t.Errorf("job %s = %s %+v, want %s", id, got.State, got.Error, st)
		}
		n := h.copiesOf(region, id)
		if st == job.StateSucceeded && (n != 1 || !h.imageExists(region, got.DestinationImageID)) {
			t.Errorf("job %s: %d copies (recorded %s), want exactly its one", id, n, got.DestinationImageID)
		}
		if st == job.StateCancelled && n != 0 {
			t.Errorf("cancelled job %s left %d copies", id, n)
		}
	}
	if h.job(queued.ID).Attempts != 0 {
		t.Error("the job cancelled while QUEUED was submitted anyway")
	}

	// The same validation as the leader's; what needs the cloud refuses.
	if _, err := p.Cancel(ctx, []string{a.ID}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("passive cancel of a SUCCEEDED job: %v", err)
	}
	for name, err := range map[string]error{
		"Prune":    p.Prune(ctx, a.ID, h.job(a.ID).DestinationImageID, "test", nil, false),
		"CopyGone": p.CopyGone(ctx, a.ID),
	} {
		if !errors.Is(err, ErrNotLeader) || !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("passive %s: %v, want ErrNotLeader (FailedPrecondition)", name, err)
		}
	}
	if _, err := p.Adopt(ctx, []string{region}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("passive Adopt: %v, want ErrNotLeader", err)
	}
	if got := h.job(a.ID).State; got != job.StateSucceeded {
		t.Errorf("a refused Prune changed the job: %s", got)
	}
	if err := h.s.Start(ctx); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("second Start: %v, want FailedPrecondition", err)
	}
}

// TestPassiveRetry: a job that failed is retried through the passive
// scheduler; the leader sees it QUEUED on the feed and copies it, with a
// new attempt and token. The passive side refuses to retry what did not
// fail, changing nothing.
func TestPassiveRetry(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{MaxRetries: 1, MaxAttempts: 1})
	p := h.passive()
	ctx := context.Background()
	h.emu.SetFaults("CopyImage", ecsemu.Fault{InternalErrorRate: 1})
	j := newJob(0, 10, "cn-shanghai")
	h.submit(j)
	h.runUntil("failed", 10*time.Second, 100, h.allTerminal([]string{j.ID}))
	failed := h.job(j.ID)
	if failed.State != job.StateFailed {
		t.Fatalf("job = %s", failed.State)
	}
	h.emu.SetFaults("CopyImage", ecsemu.Fault{})
	out, err := p.Retry(ctx, []string{j.ID})
	if err != nil || out[0].State != job.StateQueued {
		t.Fatalf("passive retry: %+v %v", out, err)
	}
	h.runUntil("done", 10*time.Second, 300, h.allTerminal([]string{j.ID}))
	got := h.job(j.ID)
	if got.State != job.StateSucceeded || got.Attempts != failed.Attempts+1 || got.ClientToken == failed.ClientToken {
		t.Fatalf("retried job = %s attempts %d token %q (failed with %d %q)", got.State, got.Attempts, got.ClientToken, failed.Attempts, failed.ClientToken)
	}
	if n := h.copiesOf("cn-shanghai", j.ID); n != 1 {
		t.Fatalf("%d copies, want 1", n)
	}
	if _, err := p.Retry(ctx, []string{j.ID}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("passive retry of a SUCCEEDED job: %v", err)
	}
	if after := h.job(j.ID); after.Revision != got.Revision {
		t.Fatalf("a refused retry changed the job (revision %d -> %d)", got.Revision, after.Revision)
	}
}

// TestFeedPicksUpStoreWrites: changes written straight to the store, with
// no scheduler method called, are carried out by the running scheduler: a
// QUEUED job created in the store is copied, and CancelRequested set on a
// COPYING job cancels it and removes its copy.
func TestFeedPicksUpStoreWrites(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10, 100)}, Options{})
	ctx := context.Background()
	const region = "cn-shanghai"
	small, big := newJob(0, 10, region), newJob(1, 100, region)
	for _, j := range []*job.Job{small, big} {
		j.State, j.CreateTime = job.StateQueued, h.clk.Now()
	}
	if err := h.store.Create(ctx, small, big); err != nil {
		t.Fatal(err)
	}
	h.runUntil("small done, big copying", 10*time.Second, 100, func() bool {
		return h.job(small.ID).State == job.StateSucceeded && h.job(big.ID).State == job.StateCopying
	})
	if _, err := h.store.Update(ctx, big.ID, func(j *job.Job) error {
		j.CancelRequested = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.runUntil("big cancelled", time.Second, 120, h.allTerminal([]string{big.ID}))
	if got := h.job(big.ID); got.State != job.StateCancelled {
		t.Fatalf("big = %s %+v, want CANCELLED", got.State, got.Error)
	}
	if n := h.copiesOf(region, big.ID); n != 0 {
		t.Fatalf("the cancelled job left %d copies", n)
	}
	if n := h.copiesOf(region, small.ID); n != 1 {
		t.Fatalf("the small job has %d copies, want 1", n)
	}
}

// TestFeedResumesAfterCompaction: the feed falls behind (its handler is
// held while more changes than the watch buffer are written) and, before
// it resumes, RemoveFinished removes finished jobs and compacts the history
// past where it stood. The feed gets ErrOutOfRange, reads the active jobs
// again, and misses nothing: a job created meanwhile is copied, a cancel
// written meanwhile is carried out, and a job that finished and was removed
// meanwhile leaves live.
func TestFeedResumesAfterCompaction(t *testing.T) {
	var armed atomic.Bool
	blocked := make(chan int64, 1)
	release := make(chan struct{})
	h := newHarness(t, ecsemu.Config{Images: images(100, 10, 10)}, Options{SlotsPerRegion: 1}, func(h *harness) {
		h.storeOpts.WatchBuffer = 4
		h.feedHook = func(rev int64) {
			if armed.CompareAndSwap(true, false) {
				blocked <- rev
				<-release
			}
		}
	})
	ctx := context.Background()
	const region = "cn-shanghai"
	copying, queued := newJob(0, 100, region), newJob(1, 10, region)
	h.submit(copying, queued)
	h.runUntil("copying", time.Second, 30, func() bool { return h.job(copying.ID).State == job.StateCopying })
	if h.job(queued.ID).State != job.StateQueued || h.s.get(queued.ID) == nil {
		t.Fatal("the second job should wait QUEUED, in live")
	}

	filler := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			f := newJob(2, 10, "cn-beijing")
			f.State, f.FinishTime = job.StateCancelled, h.clk.Now()
			if err := h.store.Create(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	armed.Store(true)
	filler(1)
	select {
	case <-blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("the feed did not take the event")
	}
	filler(8) // more than the watch buffer: the watch ends, fallen behind

	created := newJob(2, 10, region)
	created.State, created.CreateTime = job.StateQueued, h.clk.Now()
	if err := h.store.Create(ctx, created); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Update(ctx, copying.ID, func(j *job.Job) error { j.CancelRequested = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Update(ctx, queued.ID, func(j *job.Job) error {
		j.State, j.CancelRequested, j.FinishTime = job.StateCancelled, true, h.clk.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	filler(2) // removed below: the history is compacted past the changes above
	n, err := h.store.RemoveFinished(ctx, h.clk.Now().Add(time.Hour), state.MaxRemoveBatch)
	if err != nil || n != 12 {
		t.Fatalf("RemoveFinished = %d %v, want the 11 fillers and the cancelled job", n, err)
	}
	close(release)

	h.waitFor("the feed relisted", func() bool {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		return h.s.relists > 0
	})
	h.runUntil("done", 10*time.Second, 500, h.allTerminal([]string{copying.ID, created.ID}))
	if got := h.job(copying.ID); got.State != job.StateCancelled {
		t.Errorf("the job cancelled in the gap = %s, want CANCELLED", got.State)
	}
	if got := h.job(created.ID); got.State != job.StateSucceeded {
		t.Errorf("the job created in the gap = %s %+v, want SUCCEEDED", got.State, got.Error)
	}
	if n := h.copiesOf(region, copying.ID); n != 0 {
		t.Errorf("the cancelled job left %d copies", n)
	}
	if n := h.copiesOf(region, created.ID); n != 1 {
		t.Errorf("the created job has %d copies, want 1", n)
	}
	if h.s.get(queued.ID) != nil {
		t.Error("the job finished and removed in the gap is still in live")
	}
	if load := h.s.RegionLoad()[region]; load != [2]int{} {
		t.Errorf("region load = %v after everything finished", load)
	}
}

// TestFeedEventsNeverGoBack: an event older than what the scheduler
// knows changes nothing. One from the window Start read Active in, for a
// job Active left out because it had finished, is checked against the
// store and ignored; an event the feed has already passed, coming again,
// is ignored.
func TestFeedEventsNeverGoBack(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{})
	ctx := context.Background()
	const region = "cn-shanghai"
	finished, created := newJob(0, 10, region), newJob(0, 10, region)
	for _, j := range []*job.Job{finished, created} {
		j.State, j.CreateTime = job.StateQueued, h.clk.Now()
	}
	h.close() // write while no scheduler runs, then replay the events
	store := reopen(t, h)
	if err := store.Create(ctx, finished); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(ctx, finished.ID, func(j *job.Job) error {
		j.State, j.CancelRequested, j.FinishTime = job.StateCancelled, true, h.clk.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	h.open(Options{})
	old := func(id string) (int64, *job.Job) { // the job's first event
		t.Helper()
		w, err := h.store.Watch(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for ev := range w.Events() {
			if ev.Job.ID == id {
				return ev.Revision, ev.Job
			}
		}
		t.Fatalf("no event of %s", id)
		return 0, nil
	}
	rev, ev := old(finished.ID)
	// As if Start had taken its revision before that event and read
	// Active after the cancel.
	h.s.mu.Lock()
	saved := h.s.feedRev
	h.s.feedRev, h.s.feedWindow = rev-1, h.store.Revision()
	h.s.mu.Unlock()
	if err := h.s.onEvent(ctx, rev, ev); err != nil {
		t.Fatal(err)
	}
	h.s.mu.Lock()
	h.s.feedRev = max(h.s.feedRev, saved)
	h.s.mu.Unlock()
	if h.s.get(finished.ID) != nil {
		t.Fatal("a stale QUEUED event brought a CANCELLED job back into live")
	}
	h.settle()
	if got := h.job(finished.ID); got.State != job.StateCancelled || got.Attempts != 0 {
		t.Fatalf("finished job = %s attempts %d", got.State, got.Attempts)
	}

	if err := h.store.Create(ctx, created); err != nil {
		t.Fatal(err)
	}
	h.runUntil("created job done", 10*time.Second, 100, h.allTerminal([]string{created.ID}))
	crev, cev := old(created.ID)
	if err := h.s.onEvent(ctx, crev, cev); err != nil { // passed already: ignored
		t.Fatal(err)
	}
	if h.s.get(created.ID) != nil {
		t.Fatal("a replayed QUEUED event brought a SUCCEEDED job back into live")
	}
	if n := h.copiesOf(region, created.ID); n != 1 || h.job(created.ID).State != job.StateSucceeded {
		t.Fatalf("created job %s with %d copies", h.job(created.ID).State, n)
	}
}
