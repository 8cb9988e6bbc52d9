package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/state/statetest"
)

// next reads one event from w within a generous deadline.
func next(t *testing.T, w state.Watcher) (state.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		return ev, ok
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
		return state.Event{}, false
	}
}

// TestWatchersShareTheHub: watchers that start within the hub's history
// get each change decoded once, the same Job for all (one etcd watch for
// the store, not one per watcher), in order with no gap; one from further
// back than the hub's history gets a watch of its own and the same
// changes.
func TestWatchersShareTheHub(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(statetest.Epoch)
	s := open(t, "/test/hub-share/", fc)
	a := queued(fc, "m-1")
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	var ws []state.Watcher
	for i := 0; i < 20; i++ {
		w, err := s.Watch(ctx, a.Revision)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		ws = append(ws, w)
	}
	old, err := s.Watch(ctx, a.Revision-1) // before the hub's history: its own watch
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var revs []int64
	for p := int32(1); p <= 5; p++ {
		j, err := s.Update(ctx, a.ID, func(j *job.Job) error { j.ProgressPercent = p * 10; return nil })
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, j.Revision)
	}
	if ev, _ := next(t, old); ev.Revision != a.Revision || ev.Job.ID != a.ID {
		t.Fatalf("the watcher from before the hub: first event at %d, want the create at %d", ev.Revision, a.Revision)
	}
	for _, rev := range revs {
		first, _ := next(t, ws[0])
		if first.Revision != rev {
			t.Fatalf("watcher 0: event at %d, want %d", first.Revision, rev)
		}
		for i, w := range ws[1:] {
			ev, _ := next(t, w)
			if ev.Revision != rev {
				t.Fatalf("watcher %d: event at %d, want %d", i+1, ev.Revision, rev)
			}
			if ev.Job != first.Job {
				t.Fatalf("watcher %d got its own decode of revision %d: the watchers do not share one watch", i+1, rev)
			}
		}
		if ev, _ := next(t, old); ev.Revision != rev || ev.Job == first.Job {
			t.Fatalf("the watcher from before the hub: event at %d (shared %v), want %d from a watch of its own", ev.Revision, ev.Job == first.Job, rev)
		}
	}
}

// TestSlowHubWatcherIsDropped: a watcher that does not read is dropped
// once its buffer (1,024) cannot take a whole revision's changes
// (ErrAborted), with what it got in order and only whole revisions; the
// one that reads goes on; the slow one resumes from its last revision with
// nothing lost.
func TestSlowHubWatcherIsDropped(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(statetest.Epoch)
	s := open(t, "/test/hub-slow/", fc)
	a := queued(fc, "m-0")
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	slow, err := s.Watch(ctx, a.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := s.Watch(ctx, a.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	// Eleven transactions of 100 jobs (100 events at one revision each):
	// the slow watcher has room for ten.
	var all []*job.Job
	for b := 0; b < 11; b++ {
		var batch []*job.Job
		for i := 0; i < 100; i++ {
			batch = append(batch, queued(fc, fmt.Sprintf("m-%d-%d", b, i)))
		}
		if err := s.Create(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			if ev, ok := next(t, fast); !ok || ev.Job.ID != batch[i].ID {
				t.Fatalf("the reading watcher: batch %d event %d is %v (open %v), want job %s", b, i, ev.Job, ok, batch[i].ID)
			}
		}
		all = append(all, batch...)
	}
	got, last := 0, a.Revision
	for {
		ev, ok := next(t, slow)
		if !ok {
			break
		}
		if ev.Job.ID != all[got].ID {
			t.Fatalf("the slow watcher: event %d is job %s, want %s", got, ev.Job.ID, all[got].ID)
		}
		got, last = got+1, ev.Revision
	}
	if !errors.Is(slow.Err(), errdefs.ErrAborted) || got != 1000 {
		t.Fatalf("the slow watcher ended after %d of %d events with %v, want ErrAborted after ten whole batches (1000)", got, len(all), slow.Err())
	}
	again, err := s.Watch(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	for i := 1000; i < len(all); i++ {
		if ev, _ := next(t, again); ev.Job.ID != all[i].ID {
			t.Fatalf("resumed from %d: event %d is job %s, want %s", last, i, ev.Job.ID, all[i].ID)
		}
	}
}
