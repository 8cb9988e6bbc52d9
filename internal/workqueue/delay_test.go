package workqueue

import (
	"fmt"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
)

func fakeQueue(t *testing.T, b Backoff) (*Queue[string], *clock.Fake) {
	t.Helper()
	c := clock.NewFake(epoch)
	q := New(Options[string]{Clock: c, Backoff: b})
	t.Cleanup(q.ShutDown)
	return q, c
}

func TestAddAfterReleasesAtItsTime(t *testing.T) {
	q, c := fakeQueue(t, Backoff{})
	if _, ok := q.NextReady(); ok {
		t.Fatal("NextReady reports a key on an empty queue")
	}
	q.AddAfter("a", 10*time.Second)
	if at, ok := q.NextReady(); !ok || !at.Equal(epoch.Add(10*time.Second)) {
		t.Fatalf("NextReady = %v, %v; want %v, true", at, ok, epoch.Add(10*time.Second))
	}
	c.BlockUntil(1) // the delay goroutine is waiting on the clock
	c.Step(9 * time.Second)
	if n := q.Len(); n != 0 {
		t.Fatalf("Len one second early = %d, want 0", n)
	}
	if s := q.Stats(); s.Waiting != 1 {
		t.Fatalf("Stats.Waiting = %d, want 1", s.Waiting)
	}
	c.Step(time.Second)
	if k := mustGet(t, q); k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
	if s := q.Stats(); s.Waiting != 0 {
		t.Fatalf("Stats.Waiting after release = %d, want 0", s.Waiting)
	}
}

func TestAddAfterOrdersByReadyTime(t *testing.T) {
	q, c := fakeQueue(t, Backoff{})
	q.AddAfter("a", 3*time.Second)
	q.AddAfter("b", time.Second)
	q.AddAfter("c", 2*time.Second)
	q.AddAfter("d", 2*time.Second) // same time as c: insertion order
	c.Step(time.Second)
	if k := mustGet(t, q); k != "b" {
		t.Fatalf("at 1s Get = %q, want b", k)
	}
	c.Step(2 * time.Second)
	var got []string
	for range 3 {
		got = append(got, mustGet(t, q))
	}
	if fmt.Sprint(got) != "[c d a]" {
		t.Fatalf("order = %v, want [c d a]", got)
	}
}

func TestAddAfterEarlierWins(t *testing.T) {
	q, c := fakeQueue(t, Backoff{})
	q.AddAfter("a", 10*time.Second)
	q.AddAfter("a", 5*time.Second) // earlier: replaces
	q.AddAfter("a", 8*time.Second) // later: ignored
	if s := q.Stats(); s.Waiting != 1 {
		t.Fatalf("Stats.Waiting = %d, want 1: one entry per key", s.Waiting)
	}
	c.Step(5 * time.Second)
	if k := mustGet(t, q); k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
	q.Done("a")
	c.Step(10 * time.Second)
	if n, s := q.Len(), q.Stats(); n != 0 || s.Waiting != 0 {
		t.Fatalf("after the later times passed: Len = %d, Waiting = %d; want 0, 0", n, s.Waiting)
	}
}

func TestAddAfterNonPositiveIsAdd(t *testing.T) {
	q, _ := fakeQueue(t, Backoff{})
	q.AddAfter("a", 0)
	q.AddAfter("b", -time.Second)
	if n := q.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}

func TestAddAfterOfProcessingKeyRunsAfterDone(t *testing.T) {
	q, c := fakeQueue(t, Backoff{})
	q.Add("a")
	mustGet(t, q)
	q.AddAfter("a", time.Second)
	q.AddAfter("z", 2*time.Second)
	c.BlockUntil(1) // timer for a armed
	c.Step(time.Second)
	// Stepping fired and removed that timer; the next one (for z) is armed
	// only after a was released, so this returns once a is dirty.
	c.BlockUntil(1)
	if n := q.Len(); n != 0 {
		t.Fatalf("Len while a is processing = %d, want 0", n)
	}
	q.Done("a")
	if k := mustGet(t, q); k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
}

func TestShutDownDropsWaitingKeys(t *testing.T) {
	c := clock.NewFake(epoch)
	q := New(Options[string]{Clock: c})
	q.AddAfter("a", time.Second)
	q.ShutDown()
	q.AddAfter("b", time.Second)
	q.AddRateLimited("c")
	if s := q.Stats(); s.Waiting != 0 {
		t.Fatalf("Stats.Waiting after ShutDown = %d, want 0", s.Waiting)
	}
	c.Step(time.Hour)
	if _, shutdown := q.Get(); !shutdown {
		t.Fatal("a delayed key came out after ShutDown")
	}
	if n := q.NumRequeues("c"); n != 0 {
		t.Fatalf("NumRequeues after ShutDown = %d, want 0", n)
	}
}
