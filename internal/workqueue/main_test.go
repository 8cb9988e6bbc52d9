package workqueue

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// hangGuard bounds how long a test waits for something that must happen
// promptly; it only turns a bug into a failure instead of a hung test.
const hangGuard = 10 * time.Second

// mustGet calls Get and fails the test if it blocks for hangGuard.
func mustGet[K comparable](t *testing.T, q *Queue[K]) K {
	t.Helper()
	type res struct {
		k        K
		shutdown bool
	}
	ch := make(chan res, 1)
	go func() {
		k, s := q.Get()
		ch <- res{k, s}
	}()
	select {
	case r := <-ch:
		if r.shutdown {
			t.Fatalf("Get returned shutdown, want a key")
		}
		return r.k
	case <-time.After(hangGuard):
		t.Fatalf("Get blocked for %v", hangGuard)
	}
	panic("unreachable")
}

// recv returns the next value from ch or fails the test after hangGuard.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}
