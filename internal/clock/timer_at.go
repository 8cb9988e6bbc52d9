package clock

import (
	"context"
	"time"
)

// NewTimerAt returns a timer on c that fires at the instant at.
//
// Callers that compute a deadline from c.Now() and then arm a relative timer
// race with a Fake being stepped in between: the timer would fire one step
// late and a test would hang. A Fake arms absolute timers under its own lock,
// which closes that window; any other Clock falls back to a relative timer,
// where the gap is nanoseconds of real time.
func NewTimerAt(c Clock, at time.Time) Timer {
	if a, ok := c.(interface{ NewTimerAt(time.Time) Timer }); ok {
		return a.NewTimerAt(at)
	}
	return c.NewTimer(at.Sub(c.Now()))
}

// NewTimerAt returns a timer that fires once the fake clock reaches at; it
// has fired already if at is not after Now.
func (f *Fake) NewTimerAt(at time.Time) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), at: at}
	if !at.After(f.now) {
		t.c <- f.now
		return t
	}
	t.active = true
	f.waiters = append(f.waiters, t)
	f.notifyLocked()
	return t
}

// BlockUntil returns once at least n timers are pending on the fake clock.
// Tests call it to know that a goroutine has reached its wait before they step
// the clock, without sleeping.
func (f *Fake) BlockUntil(n int) { _ = f.BlockUntilContext(context.Background(), n) }

// BlockUntilContext is BlockUntil that gives up when ctx ends, so that a
// broken test fails with its deadline instead of hanging.
func (f *Fake) BlockUntilContext(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		if len(f.waiters) >= n {
			f.mu.Unlock()
			return nil
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes BlockUntil callers after the set of pending timers
// changed. f.mu must be held.
func (f *Fake) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}
