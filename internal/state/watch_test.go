package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// recv reads n events, failing if the watch ends first.
func recv(t *testing.T, w Watcher, n int) []Event {
	t.Helper()
	var out []Event
	for len(out) < n {
		ev, ok := <-w.Events()
		if !ok {
			t.Fatalf("watch ended after %d of %d events: %v", len(out), n, w.Err())
		}
		out = append(out, ev)
	}
	return out
}

func revisions(evs []Event) []int64 {
	var r []int64
	for _, ev := range evs {
		r = append(r, ev.Revision)
	}
	return r
}

// bump changes a job so that each call is a new revision.
func bump(t *testing.T, d *DB, id string) *job.Job {
	t.Helper()
	j, err := d.Update(context.Background(), id, func(j *job.Job) error { j.ProgressPercent++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestWatchCompactedAndFuture(t *testing.T) {
	d, fc := testStore(t, Options{HistoryLimit: 5})
	ctx := context.Background()
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	for i := 0; i < 19; i++ {
		bump(t, d, j.ID)
	}
	// 20 changes, the newest 5 kept: 16..20.
	_, err := d.Watch(ctx, 14)
	if !errors.Is(err, errdefs.ErrOutOfRange) || !strings.Contains(err.Error(), "oldest retained change is revision 16") {
		t.Fatalf("Watch(14) = %v, want ErrOutOfRange naming revision 16", err)
	}
	w, err := d.Watch(ctx, 15)
	if err != nil {
		t.Fatalf("Watch(15) = %v, want the retained history 16..20", err)
	}
	if got := fmt.Sprint(revisions(recv(t, w, 5))); got != "[16 17 18 19 20]" {
		t.Fatalf("Watch(15) gave %s", got)
	}
	w.Close()
	if _, err := d.Watch(ctx, 21); !errors.Is(err, errdefs.ErrOutOfRange) || !strings.Contains(err.Error(), "newer than the store's revision 20") {
		t.Fatalf("Watch(21) = %v, want ErrOutOfRange", err)
	}
	if _, err := d.Watch(ctx, -1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Watch(-1) = %v, want ErrInvalidArgument", err)
	}
	// Compaction survives a reopen.
	d.Close()
	d2, err := Open(d.Path(), Options{HistoryLimit: 5, Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, err := d2.Watch(ctx, 14); !errors.Is(err, errdefs.ErrOutOfRange) {
		t.Fatalf("after reopen Watch(14) = %v", err)
	}
}

// TestSlowWatcherDropped: a watcher that does not read must not hold up
// writers; it is dropped, says where to resume, and resuming there loses
// nothing.
func TestSlowWatcherDropped(t *testing.T) {
	d, fc := testStore(t, Options{WatchBuffer: 4})
	ctx := context.Background()
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	live := make(chan struct{}, 1)
	d.hookLive = func() { live <- struct{}{} }
	w, err := d.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first := recv(t, w, 1)[0] // revision 1, from history
	<-live                    // the watcher now takes live events
	for i := 0; i < 20; i++ {
		bump(t, d, j.ID) // must not block although nobody reads
	}
	// The 4 events that fitted are delivered, then the watch ends.
	last := first.Revision
	for ev := range w.Events() {
		if ev.Revision != last+1 {
			t.Fatalf("got revision %d after %d", ev.Revision, last)
		}
		last = ev.Revision
	}
	if last != first.Revision+4 {
		t.Fatalf("an overflowed watcher delivered up to revision %d, want %d", last, first.Revision+4)
	}
	err = w.Err()
	want := fmt.Sprintf("watcher fell behind at revision %d", last)
	if !errors.Is(err, errdefs.ErrAborted) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprintf("resume from %d", last)) {
		t.Fatalf("Err() = %v, want ErrAborted saying %q", err, want)
	}
	d.hookLive = nil
	w2, err := d.Watch(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	got := revisions(recv(t, w2, int(21-last)))
	if got[0] != last+1 || got[len(got)-1] != 21 {
		t.Fatalf("resume from %d gave %v, want %d..21", last, got, last+1)
	}
}

// TestWatchCompactedWhileCatchingUp: a watcher still reading history when
// compaction passes it ends with ErrOutOfRange (the client lists again).
// With a buffer of 1 and nobody reading, its goroutine is stuck in history
// while the writer moves on.
func TestWatchCompactedWhileCatchingUp(t *testing.T) {
	d, fc := testStore(t, Options{HistoryLimit: 5, WatchBuffer: 1})
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	for i := 0; i < 3; i++ {
		bump(t, d, j.ID)
	}
	w, err := d.Watch(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 20; i++ {
		bump(t, d, j.ID)
	}
	// It may deliver what it had read before compaction (revisions 1..4),
	// in order, then must stop.
	var last int64
	for ev := range w.Events() {
		if ev.Revision != last+1 || ev.Revision > 4 {
			t.Fatalf("got revision %d after %d, with everything up to 19 compacted", ev.Revision, last)
		}
		last = ev.Revision
	}
	if err := w.Err(); !errors.Is(err, errdefs.ErrOutOfRange) || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("Err() = %v, want ErrOutOfRange about compaction", err)
	}
}
