package workqueue

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
)

type panicReport struct {
	key string
	val any
}

func TestRunRecoversPanicAndRequeues(t *testing.T) {
	c := clock.NewFake(epoch)
	q := New(Options[string]{Clock: c, Backoff: Backoff{Base: time.Second, Max: time.Minute}})
	var calls atomic.Int32
	succeeded := make(chan struct{})
	panics := make(chan panicReport, 1)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		Run(context.Background(), q, 2, func(_ context.Context, k string) error {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			close(succeeded)
			return nil
		}, func(k string, v any) { panics <- panicReport{k, v} })
	}()
	q.Add("a")
	p := recv(t, panics, "onPanic")
	if p.key != "a" || p.val != "boom" {
		t.Fatalf("onPanic(%q, %v), want (a, boom)", p.key, p.val)
	}
	// The key was requeued with backoff before onPanic ran.
	if n := q.NumRequeues("a"); n != 1 {
		t.Fatalf("NumRequeues after panic = %d, want 1", n)
	}
	c.Step(time.Second)
	recv(t, succeeded, "the retry after the panic")
	if err := q.ShutDownWithDrain(context.Background()); err != nil {
		t.Fatal(err)
	}
	recv(t, runDone, "Run to return")
	if n := q.NumRequeues("a"); n != 0 {
		t.Fatalf("NumRequeues after success = %d, want 0 (Forget)", n)
	}
}

func TestRunRequeuesErrorsWithBackoff(t *testing.T) {
	c := clock.NewFake(epoch)
	q := New(Options[string]{Clock: c, Backoff: Backoff{Base: time.Second, Max: time.Minute}})
	attempts := make(chan int32, 10)
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		Run(ctx, q, 1, func(context.Context, string) error {
			n := calls.Add(1)
			attempts <- n
			if n < 3 {
				return errors.New("transient")
			}
			return nil
		}, nil)
	}()
	q.Add("a")
	recv(t, attempts, "attempt 1")
	c.BlockUntil(1) // retry scheduled at +1s
	c.Step(time.Second)
	recv(t, attempts, "attempt 2")
	c.BlockUntil(1) // retry scheduled at +2s
	c.Step(time.Second)
	select {
	case n := <-attempts:
		t.Fatalf("attempt %d ran one second into a two-second backoff", n)
	default:
	}
	c.Step(time.Second)
	recv(t, attempts, "attempt 3")
	cancel()
	recv(t, runDone, "Run to return after cancel")
	if !q.ShuttingDown() {
		t.Fatal("Run did not shut the queue down when ctx ended")
	}
	if n := q.NumRequeues("a"); n != 0 {
		t.Fatalf("NumRequeues after success = %d, want 0", n)
	}
}

func TestRunSkipsReadyKeysAfterCancel(t *testing.T) {
	q := New(Options[string]{})
	q.Add("a")
	q.Add("b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var calls atomic.Int32
	Run(ctx, q, 3, func(context.Context, string) error {
		calls.Add(1)
		return nil
	}, nil)
	if n := calls.Load(); n != 0 {
		t.Fatalf("fn ran %d times with a cancelled ctx, want 0", n)
	}
	if s := q.Stats(); s.Ready != 0 || s.Processing != 0 {
		t.Fatalf("Stats after Run = %+v, want empty", s)
	}
}
