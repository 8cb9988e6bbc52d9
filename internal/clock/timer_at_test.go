package clock

import (
	"context"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeNewTimerAtFiresAtInstant(t *testing.T) {
	f := NewFake(epoch)
	tm := NewTimerAt(f, epoch.Add(10*time.Second))
	f.Step(9 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("timer fired one second early")
	default:
	}
	f.Step(time.Second)
	select {
	case got := <-tm.C():
		if !got.Equal(epoch.Add(10 * time.Second)) {
			t.Fatalf("fired with %v, want %v", got, epoch.Add(10*time.Second))
		}
	default:
		t.Fatal("timer did not fire at its instant")
	}
}

func TestFakeNewTimerAtInThePastFiresAtOnce(t *testing.T) {
	f := NewFake(epoch)
	tm := NewTimerAt(f, epoch.Add(-time.Second))
	select {
	case <-tm.C():
	default:
		t.Fatal("timer for a past instant did not fire immediately")
	}
	if n := f.Waiters(); n != 0 {
		t.Fatalf("Waiters = %d, want 0", n)
	}
}

func TestRealNewTimerAtFallsBackToRelative(t *testing.T) {
	tm := NewTimerAt(Real{}, time.Now().Add(-time.Millisecond))
	<-tm.C() // a past instant fires at once; a hang here fails the test by timeout
}

func TestBlockUntilWaitsForTimers(t *testing.T) {
	f := NewFake(epoch)
	ready := make(chan struct{})
	go func() {
		f.BlockUntil(2)
		close(ready)
	}()
	f.NewTimer(time.Second)
	select {
	case <-ready:
		t.Fatal("BlockUntil(2) returned with one timer pending")
	default:
	}
	f.NewTimer(time.Second)
	<-ready
}

func TestBlockUntilContextGivesUp(t *testing.T) {
	f := NewFake(epoch)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.BlockUntilContext(ctx, 1); err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestBlockUntilSeesStopAndReset(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	tm.Stop()
	if n := f.Waiters(); n != 0 {
		t.Fatalf("Waiters after Stop = %d, want 0", n)
	}
	tm.Reset(time.Second)
	f.BlockUntil(1)
	f.Step(time.Second)
	<-tm.C()
}
