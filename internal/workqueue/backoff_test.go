package workqueue

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 8 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for n, w := range want {
		if got := b.When(n); got != w*time.Second {
			t.Errorf("When(%d) = %v, want %v", n, got, w*time.Second)
		}
	}
	if got := b.When(10_000); got != 8*time.Second {
		t.Errorf("When(10000) = %v, want the cap (no overflow)", got)
	}
	if got := b.When(-1); got != time.Second {
		t.Errorf("When(-1) = %v, want Base", got)
	}
}

func TestBackoffJitterStaysBelowTheDelay(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 8 * time.Second, Jitter: 0.5, Rand: rand.New(rand.NewPCG(1, 2))}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := b.When(10) // capped: 8s
		if d > 8*time.Second || d < 4*time.Second {
			t.Fatalf("When(10) with Jitter 0.5 = %v, want in [4s, 8s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 200 draws: jitter is not applied", len(seen))
	}
}

func TestBackoffNormalized(t *testing.T) {
	if got := (Backoff{}).normalized(); got != DefaultBackoff() {
		t.Errorf("zero Backoff normalized = %+v, want DefaultBackoff", got)
	}
	got := Backoff{Base: 10 * time.Second, Max: time.Second, Jitter: 7}.normalized()
	if got.Max != 10*time.Second || got.Jitter != 1 {
		t.Errorf("normalized = %+v, want Max raised to Base and Jitter clamped to 1", got)
	}
	got = Backoff{Base: -1, Jitter: -3}.normalized()
	if got.Base != DefaultBackoff().Base || got.Max != DefaultBackoff().Max || got.Jitter != 0 {
		t.Errorf("normalized = %+v, want default Base and Max and Jitter 0", got)
	}
}

func TestAddRateLimitedBacksOffAndForgetResets(t *testing.T) {
	q, c := fakeQueue(t, Backoff{Base: time.Second, Max: 4 * time.Second})
	// Each failure waits twice as long as the last, up to the cap.
	for i, d := range []time.Duration{1, 2, 4, 4} {
		q.AddRateLimited("a")
		if n := q.NumRequeues("a"); n != i+1 {
			t.Fatalf("NumRequeues = %d, want %d", n, i+1)
		}
		c.Step(d*time.Second - time.Millisecond)
		if n := q.Len(); n != 0 {
			t.Fatalf("failure %d: ready %v early", i+1, time.Millisecond)
		}
		c.Step(time.Millisecond)
		mustGet(t, q)
		q.Done("a")
	}
	q.Forget("a")
	if n := q.NumRequeues("a"); n != 0 {
		t.Fatalf("NumRequeues after Forget = %d, want 0", n)
	}
	q.AddRateLimited("a")
	c.Step(time.Second)
	if k := mustGet(t, q); k != "a" {
		t.Fatalf("Get = %q, want a back after Base", k)
	}
}
