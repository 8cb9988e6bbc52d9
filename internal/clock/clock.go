// Package clock is the time source of the scheduler and the work queue. Tests
// pass a Fake and move time by hand, so that backoff, delays and polling
// intervals are tested without sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is the part of package time the engine uses.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
	// NewTimer is time.NewTimer on this clock.
	NewTimer(d time.Duration) Timer
}

// Timer is a stoppable, resettable timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (Real) NewTimer(d time.Duration) Timer         { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Fake is a clock that moves only when Step or Set is called.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeTimer
	changed chan struct{} // closed when waiters changes; see BlockUntil
}

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) After(d time.Duration) <-chan time.Time { return f.NewTimer(d).C() }

func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), at: f.now.Add(d)}
	if d <= 0 {
		t.c <- f.now
		return t
	}
	t.active = true
	f.waiters = append(f.waiters, t)
	f.notifyLocked()
	return t
}

// Step moves the clock forward by d and fires every timer that is due.
func (f *Fake) Step(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t and fires every timer that is due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.now = t
	var due, keep []*fakeTimer
	for _, w := range f.waiters {
		if !w.at.After(t) {
			due = append(due, w)
		} else {
			keep = append(keep, w)
		}
	}
	f.waiters = keep
	if len(due) > 0 {
		f.notifyLocked()
	}
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, w := range due {
		w.active = false
		select {
		case w.c <- t:
		default:
		}
	}
	f.mu.Unlock()
}

// Waiters returns how many timers are pending; tests use it to know that a
// goroutine has reached its wait before they step the clock.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	at     time.Time
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.stopLocked()
}

func (t *fakeTimer) stopLocked() bool {
	if !t.active {
		return false
	}
	t.active = false
	for i, w := range t.f.waiters {
		if w == t {
			t.f.waiters = append(t.f.waiters[:i], t.f.waiters[i+1:]...)
			t.f.notifyLocked()
			break
		}
	}
	return true
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.stopLocked()
	t.at = t.f.now.Add(d)
	if d <= 0 {
		select {
		case t.c <- t.f.now:
		default:
		}
		return was
	}
	t.active = true
	t.f.waiters = append(t.f.waiters, t)
	t.f.notifyLocked()
	return was
}
