package workqueue

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

func TestAddDeduplicates(t *testing.T) {
	q := New(Options[string]{})
	defer q.ShutDown()
	q.Add("a")
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if n := q.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	if k := mustGet(t, q); k != "a" {
		t.Fatalf("first Get = %q, want a", k)
	}
	if k := mustGet(t, q); k != "b" {
		t.Fatalf("second Get = %q, want b", k)
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("Len after draining = %d, want 0", n)
	}
}

func TestKeyAddedWhileProcessingWaitsForDone(t *testing.T) {
	q := New(Options[string]{})
	defer q.ShutDown()
	q.Add("a")
	k := mustGet(t, q)
	q.Add("a")
	q.Add("a")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len while a is processing = %d, want 0 (a must not be handed out twice)", n)
	}
	if s := q.Stats(); s.Processing != 1 {
		t.Fatalf("Stats.Processing = %d, want 1", s.Processing)
	}
	q.Done(k)
	if n := q.Len(); n != 1 {
		t.Fatalf("Len after Done = %d, want 1 (the re-add)", n)
	}
	if k := mustGet(t, q); k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
	q.Done("a")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len after second Done = %d, want 0: re-adds collapse into one pass", n)
	}
}

func TestDoneOfUnknownKeyIsNoOp(t *testing.T) {
	q := New(Options[string]{})
	defer q.ShutDown()
	q.Add("a")
	q.Done("a") // not handed out yet
	if n := q.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1", n)
	}
}

// TestNeverConcurrentPerKey hammers a few keys from many producers and
// workers and checks, under -race, that no key is ever processed twice at once
// and that a key added after its last pass started gets another pass.
func TestNeverConcurrentPerKey(t *testing.T) {
	const keys, adds, workers = 4, 2000, 8
	q := New(Options[int]{})
	var inFlight [keys]atomic.Int32
	var passes [keys]atomic.Int32
	var violations atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, q, workers, func(_ context.Context, k int) error {
			if inFlight[k].Add(1) != 1 {
				violations.Add(1)
			}
			passes[k].Add(1)
			inFlight[k].Add(-1)
			return nil
		}, nil)
	}()
	var producers sync.WaitGroup
	for p := range 4 {
		producers.Go(func() {
			for i := range adds {
				q.Add((i + p) % keys)
			}
		})
	}
	producers.Wait()
	if err := q.ShutDownWithDrain(ctx); err != nil {
		t.Fatalf("ShutDownWithDrain: %v", err)
	}
	recv(t, done, "Run to return")
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d passes ran concurrently with another pass of the same key", v)
	}
	for k := range keys {
		if passes[k].Load() == 0 {
			t.Errorf("key %d was never processed", k)
		}
	}
}

func TestFIFOOrder(t *testing.T) {
	q := New(Options[int]{})
	defer q.ShutDown()
	for i := range 100 {
		q.Add(i)
	}
	for i := range 100 {
		if k := mustGet(t, q); k != i {
			t.Fatalf("Get #%d = %d, want FIFO", i, k)
		}
	}
}

func TestShutDownWakesGet(t *testing.T) {
	q := New(Options[string]{})
	res := make(chan bool, 2)
	for range 2 {
		go func() {
			_, shutdown := q.Get()
			res <- shutdown
		}()
	}
	q.ShutDown()
	for range 2 {
		if !recv(t, res, "Get to wake") {
			t.Fatal("Get returned a key from an empty queue")
		}
	}
	q.ShutDown() // idempotent
}

func TestShutDownHandsOutReadyKeysThenStops(t *testing.T) {
	q := New(Options[string]{})
	q.Add("a")
	q.ShutDown()
	q.Add("b") // ignored
	if k := mustGet(t, q); k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
	if _, shutdown := q.Get(); !shutdown {
		t.Fatal("Get after draining did not report shutdown")
	}
	if !q.ShuttingDown() {
		t.Fatal("ShuttingDown = false")
	}
}

func TestShutDownWithDrainWaitsForInFlight(t *testing.T) {
	q := New(Options[string]{})
	q.Add("a")
	k := mustGet(t, q)
	q.Add("a") // dirty: must run once more before the drain completes
	drained := make(chan error, 1)
	go func() { drained <- q.ShutDownWithDrain(context.Background()) }()
	select {
	case err := <-drained:
		t.Fatalf("drain returned (%v) while a was processing", err)
	default:
	}
	q.Done(k)
	select {
	case err := <-drained:
		t.Fatalf("drain returned (%v) while a was ready again", err)
	default:
	}
	if k := mustGet(t, q); k != "a" {
		t.Fatalf("Get = %q, want the re-added a", k)
	}
	q.Done("a")
	if err := recv(t, drained, "drain"); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestShutDownWithDrainGivesUpWithContext(t *testing.T) {
	q := New(Options[string]{})
	q.Add("a")
	mustGet(t, q)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.ShutDownWithDrain(ctx); err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	q.Done("a")
}

func TestShutDownWithDrainOnIdleQueue(t *testing.T) {
	q := New(Options[string]{})
	if err := q.ShutDownWithDrain(context.Background()); err != nil {
		t.Fatalf("drain of an idle queue: %v", err)
	}
}

// TestFIFOCompaction drives the FIFO through its compaction (a long backlog
// consumed past half) while adding, and checks nothing is lost or reordered.
func TestFIFOCompaction(t *testing.T) {
	q := New(Options[int]{})
	defer q.ShutDown()
	next, want := 0, 0
	for range 5 {
		for range 3000 {
			q.Add(next)
			next++
		}
		for range 2500 {
			k, _ := q.Get()
			if k != want {
				t.Fatalf("Get = %d, want %d", k, want)
			}
			q.Done(k)
			want++
		}
	}
	if n := q.Len(); n != next-want {
		t.Fatalf("Len = %d, want %d", n, next-want)
	}
}
