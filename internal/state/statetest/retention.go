package statetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

const day = 24 * time.Hour

// finish moves a queued job to the terminal state s.
func finish(t testing.TB, d state.Store, id string, s job.State) *job.Job {
	t.Helper()
	ctx := context.Background()
	if s == job.StateSucceeded {
		if _, err := d.Update(ctx, id, setState(job.StateSubmitting)); err != nil {
			t.Fatal(err)
		}
	}
	j, err := d.Update(ctx, id, setState(s))
	if err != nil {
		t.Fatalf("finish %s as %s: %v", id, s, err)
	}
	return j
}

func wantGone(t *testing.T, d state.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := d.Get(context.Background(), id); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Get(%s) after removal: %v, want NotFound", id, err)
		}
	}
}

// wantNotListed fails if List with any of filters returns one of ids.
func wantNotListed(t *testing.T, d state.Store, ids []string, filters []state.Filter) {
	t.Helper()
	for _, f := range filters {
		for _, j := range listAll(t, d, f, 2) {
			if slices.Contains(ids, j.ID) {
				t.Errorf("List(%+v) returns removed job %s", f, j.ID)
			}
		}
	}
}

// testRemoveFinished removes finished jobs older than the cutoff and
// nothing else, keeps every index query consistent and compacts the
// history through the removed jobs' last revision.
func testRemoveFinished(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	old := map[job.State]*job.Job{}
	for _, s := range []job.State{job.StateSucceeded, job.StateFailed, job.StateCancelled} {
		j := newJob(fc, "", "m-old-"+s.String(), "ap-southeast-1") // ad hoc: no policy needs it
		mustCreate(t, d, j)
		old[s] = finish(t, d, j.ID, s)
	}
	running := newJob(fc, "base", "m-running", "ap-southeast-1") // active: never removed
	mustCreate(t, d, running)
	touched := newJob(fc, "base", "m-touched", "ap-southeast-1") // finished long ago, changed since
	mustCreate(t, d, touched)
	finish(t, d, touched.ID, job.StateFailed)
	fc.Step(40 * day)
	bump(t, d, touched.ID)
	recent := newJob(fc, "base", "m-recent", "ap-southeast-1")
	mustCreate(t, d, recent)
	finish(t, d, recent.ID, job.StateSucceeded)
	revBefore := d.Revision()
	live, err := d.Watch(ctx, revBefore)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	n, err := d.RemoveFinished(ctx, fc.Now().Add(-30*day), 10)
	if err != nil || n != 3 {
		t.Fatalf("RemoveFinished: %d, %v; want 3 removed", n, err)
	}
	var removed []string
	var newest int64
	for _, j := range old {
		removed = append(removed, j.ID)
		newest = max(newest, j.Revision)
	}
	wantGone(t, d, removed...)
	for _, id := range []string{running.ID, touched.ID, recent.ID} {
		if _, err := d.Get(ctx, id); err != nil {
			t.Errorf("Get(%s), which must be kept: %v", id, err)
		}
	}
	if d.Revision() != revBefore {
		t.Errorf("revision moved from %d to %d: a removal is not a change", revBefore, d.Revision())
	}
	// Every index query agrees.
	wantNotListed(t, d, removed, []state.Filter{{}, {DestinationRegion: "ap-southeast-1"}, {SourceImageID: old[job.StateFailed].SourceImageID},
		{States: []job.State{job.StateSucceeded, job.StateFailed, job.StateCancelled}}})
	if got := len(listAll(t, d, state.Filter{}, 100)); got != 3 {
		t.Errorf("List: %d jobs, want 3", got)
	}
	if active, err := d.Active(ctx); err != nil || len(active) != 1 || active[0].ID != running.ID {
		t.Errorf("Active: %v %v, want only %s", ids(active), err, running.ID)
	}
	// History: compacted through the newest removed revision; the rest is
	// there and holds no removed job.
	if _, err := d.Watch(ctx, newest-1); !errors.Is(err, errdefs.ErrOutOfRange) {
		t.Errorf("Watch from before a removed job's last change: %v, want OutOfRange", err)
	}
	w, err := d.Watch(ctx, newest)
	if err != nil {
		t.Fatalf("Watch from the compacted revision: %v", err)
	}
	for _, ev := range recvThrough(t, w, revBefore) {
		for _, id := range removed {
			if ev.Job.ID == id {
				t.Errorf("retained event %d holds removed job %s", ev.Revision, id)
			}
		}
	}
	w.Close()
	// A live watcher saw nothing, and still works.
	bump(t, d, running.ID)
	if ev := recv(t, live, 1)[0]; ev.Job.ID != running.ID {
		t.Errorf("live watcher's next event is for %s, want %s", ev.Job.ID, running.ID)
	}
	// Nothing left to remove; a restart finds the same store.
	if n, err := d.RemoveFinished(ctx, fc.Now().Add(-30*day), 10); n != 0 || err != nil {
		t.Errorf("second RemoveFinished: %d, %v; want 0", n, err)
	}
	live.Close()
	rev := d.Revision()
	d2 := be.Reopen(t, d, fc)
	if d2.Revision() != rev {
		t.Errorf("reopened at revision %d, want %d", d2.Revision(), rev)
	}
	wantGone(t, d2, removed...)
}

func testRemoveFinishedBatchesAndLimit(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	for i := range 5 {
		j := newJob(fc, "", "m-"+string(rune('a'+i)), "r1")
		mustCreate(t, d, j)
		finish(t, d, j.ID, job.StateCancelled)
	}
	fc.Step(2 * day)
	var got []int
	for range 4 {
		n, err := d.RemoveFinished(ctx, fc.Now().Add(-day), 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if want := []int{2, 2, 1, 0}; !equalInts(got, want) {
		t.Errorf("batches removed %v, want %v", got, want)
	}
	for _, limit := range []int{0, -1, state.MaxRemoveBatch + 1} {
		if _, err := d.RemoveFinished(ctx, fc.Now(), limit); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "limit") {
			t.Errorf("limit %d: %v, want InvalidArgument naming limit", limit, err)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.RemoveFinished(done, fc.Now(), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	_ = d.Close()
	if _, err := d.RemoveFinished(ctx, fc.Now(), 1); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("closed store: %v, want Unavailable", err)
	}
}

// testRemoveKeepsWhatPoliciesNeed: of a policy's jobs for one source and
// region, the newest and the newest SUCCEEDED stay however old, since the
// plan reads them; older ones, and jobs of other keys superseded, go.
func testRemoveKeepsWhatPoliciesNeed(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	mk := func(policy, image, region string, s job.State) *job.Job {
		j := newJob(fc, policy, image, region)
		mustCreate(t, d, j)
		return finish(t, d, j.ID, s)
	}
	// One key: succeeded, failed, succeeded, cancelled (newest).
	s1 := mk("p", "m-1", "r1", job.StateSucceeded)
	f1 := mk("p", "m-1", "r1", job.StateFailed)
	s2 := mk("p", "m-1", "r1", job.StateSucceeded)
	c1 := mk("p", "m-1", "r1", job.StateCancelled)
	// Same source, other region / other policy: their own keys.
	other := mk("p", "m-1", "r2", job.StateCancelled)
	otherPolicy := mk("q", "m-1", "r1", job.StateFailed)
	// A lone succeeded job is its key's newest: it stays.
	lone := mk("p", "m-2", "r1", job.StateSucceeded)
	fc.Step(100 * day)
	n, err := d.RemoveFinished(ctx, fc.Now().Add(-30*day), 100)
	if err != nil || n != 2 {
		t.Fatalf("RemoveFinished: %d, %v; want 2 (the older succeeded and failed jobs)", n, err)
	}
	wantGone(t, d, s1.ID, f1.ID)
	for _, j := range []*job.Job{s2, c1, other, otherPolicy, lone} {
		if _, err := d.Get(ctx, j.ID); err != nil {
			t.Errorf("job %s (%s %s %s %s) removed: %v", j.ID, j.Policy, j.SourceImageID, j.DestinationRegion, j.State, err)
		}
	}
	// A newer job supersedes: a new succeeded copy makes s2 and c1 go.
	s3 := mk("p", "m-1", "r1", job.StateSucceeded)
	fc.Step(100 * day)
	if n, err := d.RemoveFinished(ctx, fc.Now().Add(-30*day), 100); err != nil || n != 2 {
		t.Fatalf("after a newer success: %d, %v; want 2", n, err)
	}
	wantGone(t, d, s2.ID, c1.ID)
	if _, err := d.Get(ctx, s3.ID); err != nil {
		t.Errorf("newest succeeded job removed: %v", err)
	}
}

// testRemoveKeepsTombstonedJob: the job a cancel tombstone names stays
// (the tombstone is lifted through it), even when a newer job of its pair
// would otherwise let it go.
func testRemoveKeepsTombstonedJob(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	a := newJob(fc, "p", "m-1", "r1")
	mustCreate(t, d, a)
	if _, err := d.Update(ctx, a.ID, func(j *job.Job) error { j.CancelRequested = true; j.State = job.StateCancelled; return nil }); err != nil {
		t.Fatal(err)
	}
	if ts, err := d.Tombstones(ctx, "p"); err != nil || len(ts) != 1 || ts[0].JobID != a.ID {
		t.Fatalf("tombstones: %+v, %v", ts, err)
	}
	b := newJob(fc, "p", "m-1", "r1") // a newer job of the pair (plain Create does not consult tombstones)
	mustCreate(t, d, b)
	finish(t, d, b.ID, job.StateFailed)
	fc.Step(100 * day)
	if n, err := d.RemoveFinished(ctx, fc.Now().Add(-30*day), 10); err != nil || n != 0 {
		t.Fatalf("RemoveFinished: %d, %v; want 0 (a is tombstoned, b is the newest)", n, err)
	}
	if _, err := d.Get(ctx, a.ID); err != nil {
		t.Fatalf("tombstoned job removed: %v", err)
	}
}

// testRemoveDropsRequestRecords: a request record that names a removed job
// goes with it (a record must name only jobs that exist); a record whose
// jobs all stay is kept.
func testRemoveDropsRequestRecords(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	a, b := newJob(fc, "", "m-a", "r1"), newJob(fc, "", "m-a", "r2")
	if _, err := d.CreateRequest(ctx, &state.Request{ID: "req-old", Fingerprint: "f1", Jobs: []*job.Job{a, b}}); err != nil {
		t.Fatal(err)
	}
	finish(t, d, a.ID, job.StateCancelled) // b stays active
	fc.Step(40 * day)
	c := newJob(fc, "", "m-c", "r1")
	if _, err := d.CreateRequest(ctx, &state.Request{ID: "req-new", Fingerprint: "f2", Jobs: []*job.Job{c}}); err != nil {
		t.Fatal(err)
	}
	finish(t, d, c.ID, job.StateCancelled)
	if n, err := d.RemoveFinished(ctx, fc.Now().Add(-30*day), 10); err != nil || n != 1 {
		t.Fatalf("RemoveFinished: %d, %v; want 1", n, err)
	}
	wantGone(t, d, a.ID)
	if _, err := d.GetRequest(ctx, "req-old"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("request naming a removed job: %v, want NotFound", err)
	}
	if _, err := d.GetRequest(ctx, "req-new"); err != nil {
		t.Errorf("request of kept jobs: %v", err)
	}
	if _, err := d.Get(ctx, b.ID); err != nil {
		t.Errorf("the other job of the removed request: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// testRunRetention drives the loop with a fake clock: a sweep at start,
// then one per interval; zero retention keeps everything.
func testRunRetention(t *testing.T, be Backend) {
	d, fc := open(t, be)
	mk := func(image string) *job.Job {
		j := newJob(fc, "", image, "r1")
		mustCreate(t, d, j)
		return finish(t, d, j.ID, job.StateSucceeded)
	}
	first := mk("m-first")
	fc.Step(10 * day)
	second := mk("m-second")
	fc.Step(25 * day) // first is 35 days old, second 25

	var mu sync.Mutex
	removed := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		state.RunRetention(ctx, d, state.RetentionOptions{Retention: 30 * day, Interval: time.Hour, Clock: fc, Removed: func(n int) {
			mu.Lock()
			removed += n
			mu.Unlock()
		}})
	}()
	defer func() { cancel(); <-done }()

	waitFor(t, "the first sweep and its timer", func() bool { return fc.Waiters() == 1 })
	wantGone(t, d, first.ID)
	if _, err := d.Get(context.Background(), second.ID); err != nil {
		t.Fatalf("second job removed at 25 days: %v", err)
	}
	fc.Step(6 * day) // the timer fires; second is now 31 days old
	waitFor(t, "the second sweep", func() bool {
		_, err := d.Get(context.Background(), second.ID)
		return errors.Is(err, errdefs.ErrNotFound)
	})
	waitFor(t, "the count", func() bool { mu.Lock(); defer mu.Unlock(); return removed == 2 })

	cancel()
	<-done

	// Zero retention: returns at once, removes nothing.
	keep := mk("m-keep")
	fc.Step(1000 * day)
	state.RunRetention(context.Background(), d, state.RetentionOptions{Clock: fc})
	if _, err := d.Get(context.Background(), keep.ID); err != nil {
		t.Fatalf("retention 0 removed a job: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
