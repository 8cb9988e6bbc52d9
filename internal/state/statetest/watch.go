package statetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// recv reads n events, failing if the watch ends first.
func recv(t *testing.T, w state.Watcher, n int) []state.Event {
	t.Helper()
	var out []state.Event
	for len(out) < n {
		ev, ok := <-w.Events()
		if !ok {
			t.Fatalf("watch ended after %d of %d events: %v", len(out), n, w.Err())
		}
		out = append(out, ev)
	}
	return out
}

// recvThrough reads events up to and including revision rev.
func recvThrough(t *testing.T, w state.Watcher, rev int64) []state.Event {
	t.Helper()
	var out []state.Event
	for len(out) == 0 || out[len(out)-1].Revision < rev {
		out = append(out, recv(t, w, 1)...)
	}
	if last := out[len(out)-1].Revision; last != rev {
		t.Fatalf("watch jumped from %v to %d past %d", revisions(out[:len(out)-1]), last, rev)
	}
	return out
}

func revisions(evs []state.Event) []int64 {
	var r []int64
	for _, ev := range evs {
		r = append(r, ev.Revision)
	}
	return r
}

// bump changes a job so that each call is a new revision.
func bump(t *testing.T, d state.Store, id string) *job.Job {
	t.Helper()
	j, err := d.Update(context.Background(), id, func(j *job.Job) error { j.ProgressPercent++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// history creates one job and changes it n times; it returns the job's
// revision after each of the n+1 changes and the revision before them.
func history(t *testing.T, d state.Store, j *job.Job, n int) (before int64, revs []int64) {
	t.Helper()
	before = d.Revision()
	mustCreate(t, d, j)
	revs = append(revs, j.Revision)
	for range n {
		revs = append(revs, bump(t, d, j.ID).Revision)
	}
	if len(slices.Compact(slices.Clone(revs))) != len(revs) || !slices.IsSorted(revs) || revs[0] <= before {
		t.Fatalf("revisions of successive changes %v (store at %d before) are not increasing", revs, before)
	}
	return before, revs
}

func testWatchHistoryThenLive(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	j := newJob(fc, "", "m", "r")
	before, revs := history(t, d, j, 4)
	w, err := d.Watch(ctx, before)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	hist := recv(t, w, 5)
	if !slices.Equal(revisions(hist), revs) {
		t.Fatalf("history revisions %v, want %v", revisions(hist), revs)
	}
	if hist[0].Job.ProgressPercent != 0 || hist[4].Job.ProgressPercent != 4 || hist[4].Job.Revision != revs[4] {
		t.Fatalf("history does not hold the job after each change: %+v", hist[4].Job)
	}
	next := bump(t, d, j.ID)
	live := recv(t, w, 1)
	if live[0].Revision != next.Revision || live[0].Job.ProgressPercent != 5 {
		t.Fatalf("live event %d %+v, want revision %d", live[0].Revision, live[0].Job, next.Revision)
	}
}

func testWatchResumeFromRevision(t *testing.T, be Backend) {
	d, fc := open(t, be)
	j := newJob(fc, "", "m", "r")
	_, revs := history(t, d, j, 9)
	w, err := d.Watch(context.Background(), revs[6])
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := revisions(recv(t, w, 3)); !slices.Equal(got, revs[7:]) {
		t.Fatalf("resume from %d gave %v, want %v", revs[6], got, revs[7:])
	}
	// Resuming at the current revision delivers only new changes.
	w2, err := d.Watch(context.Background(), d.Revision())
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	next := bump(t, d, j.ID)
	if ev := recv(t, w2, 1)[0]; ev.Revision != next.Revision {
		t.Fatalf("watch from the current revision first got %d, want %d", ev.Revision, next.Revision)
	}
}

// testWatchFutureAndInvalid: a revision ahead of the store is refused
// (the client lists again), as is a negative one. Compaction's
// ErrOutOfRange is asserted in testRemoveFinished, through the one
// compaction every backend has.
func testWatchFutureAndInvalid(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	history(t, d, newJob(fc, "", "m", "r"), 2)
	if _, err := d.Watch(ctx, d.Revision()+1); !errors.Is(err, errdefs.ErrOutOfRange) {
		t.Fatalf("Watch(%d), one past the store, = %v, want ErrOutOfRange", d.Revision()+1, err)
	}
	if _, err := d.Watch(ctx, -1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Watch(-1) = %v, want ErrInvalidArgument", err)
	}
}

func testWatchEndings(t *testing.T, be Backend) {
	d, _ := open(t, be)
	ctx, cancel := context.WithCancel(context.Background())
	w1, err := d.Watch(ctx, d.Revision())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range w1.Events() {
	}
	if w1.Err() != nil {
		t.Fatalf("Err after a done context = %v, want nil", w1.Err())
	}
	w2, err := d.Watch(context.Background(), d.Revision())
	if err != nil {
		t.Fatal(err)
	}
	w2.Close()
	if _, ok := <-w2.Events(); ok || w2.Err() != nil {
		t.Fatalf("after Close: open=%v err=%v", ok, w2.Err())
	}
	w3, err := d.Watch(context.Background(), d.Revision())
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	for range w3.Events() {
	}
	if err := w3.Err(); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Err after the store closed = %v, want ErrUnavailable", err)
	}
	w3.Close() // harmless after the end
}

// testManyWatchersUnderLoad starts watchers from assorted revisions while
// writers run, so some catch up from history while changes are committed:
// every watcher must see every change after its start, in order, once.
func testManyWatchersUnderLoad(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	const writers, each, watchers = 4, 60, 40
	jobs := make([]*job.Job, writers)
	for i := range jobs {
		jobs[i] = newJob(fc, "", "m", "r")
	}
	base := d.Revision()
	mustCreate(t, d, jobs...)

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		changes = map[int64]string{} // every change's revision, and its job
	)
	for _, j := range jobs {
		changes[j.Revision] = j.ID
	}
	var writing sync.WaitGroup
	for i := 0; i < writers; i++ {
		writing.Add(1)
		go func() {
			defer writing.Done()
			for n := 0; n < each; n++ {
				got, err := d.Update(ctx, jobs[i].ID, func(j *job.Job) error { j.ProgressPercent++; return nil })
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				changes[got.Revision] = got.ID
				mu.Unlock()
			}
		}()
	}
	type seen struct {
		from int64
		evs  []state.Event
		err  error
	}
	// Watchers stop at the final revision, known once the writers are done.
	var final atomic.Int64
	written := make(chan struct{})
	results := make(chan seen, watchers)
	for i := 0; i < watchers; i++ {
		now := d.Revision()
		from := []int64{base, base + (now-base)/2, now}[i%3] // the start, half way, or now
		w, err := d.Watch(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			s := seen{from: from}
			last, known := from, written
			for known != nil || last < final.Load() {
				select {
				case ev, ok := <-w.Events():
					if !ok {
						s.err = fmt.Errorf("watcher from %d ended after %d events: %v", from, len(s.evs), w.Err())
						results <- s
						return
					}
					s.evs = append(s.evs, ev)
					last = ev.Revision
				case <-known:
					known = nil
				}
			}
			results <- s
		}()
	}
	writing.Wait()
	final.Store(d.Revision())
	close(written)
	wg.Wait()
	close(results)
	if t.Failed() {
		return
	}
	var all []int64
	for r := range changes {
		all = append(all, r)
	}
	slices.Sort(all)
	for s := range results {
		if s.err != nil {
			t.Error(s.err)
			continue
		}
		var want []int64
		for _, r := range all {
			if r > s.from {
				want = append(want, r)
			}
		}
		var got []int64
		for _, ev := range s.evs {
			if len(got) == 0 || got[len(got)-1] != ev.Revision {
				got = append(got, ev.Revision) // one Create's jobs may share a revision
			}
			if ev.Job.Revision != ev.Revision || changes[ev.Revision] == "" {
				t.Errorf("watcher from %d: event %d holds job %s at revision %d", s.from, ev.Revision, ev.Job.ID, ev.Job.Revision)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("watcher from %d: got %d revisions %v\nwant %d %v", s.from, len(got), got, len(want), want)
		}
	}
}
