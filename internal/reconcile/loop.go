package reconcile

import (
	"context"
	"sync"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/policy"
)

// loop is one policy's goroutine and status.
type loop struct {
	wake   chan struct{} // buffered 1: a pending "run now"
	done   chan struct{} // closed when the goroutine returns
	prev   <-chan struct{}
	cancel context.CancelFunc

	mu     sync.Mutex
	p      *policy.Policy
	status PolicyStatus
	dests  map[string]*DestinationStatus // by region
}

func newLoop(p *policy.Policy, prev <-chan struct{}) *loop {
	l := &loop{wake: make(chan struct{}, 1), done: make(chan struct{}), prev: prev, p: p, dests: map[string]*DestinationStatus{}}
	l.status = PolicyStatus{Name: p.Name, Enabled: p.Enabled, Interval: p.Interval}
	return l
}

func (l *loop) policy() *policy.Policy {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p
}

// replace swaps in a new definition; it reports whether it changed.
func (l *loop) replace(p *policy.Policy) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := !l.p.Equal(p)
	l.p = p
	l.status.Enabled, l.status.Interval = p.Enabled, p.Interval
	if !p.Enabled {
		l.status.NextRun = time.Time{}
	}
	return changed
}

func (l *loop) wakeUp() {
	select {
	case l.wake <- struct{}{}:
	default: // a run is already pending
	}
}

// stop ends the goroutine (once started); a run in progress sees its
// context cancelled.
func (l *loop) stop() {
	if l.cancel != nil {
		l.cancel()
	} else {
		close(l.done) // never started
	}
}

func (l *loop) snapshot() PolicyStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.status
	s.Actions = make(map[policy.Action]int, len(l.status.Actions))
	for k, v := range l.status.Actions {
		s.Actions[k] = v
	}
	s.Policy = l.p
	s.Destinations = make([]DestinationStatus, 0, len(l.p.Destinations))
	for _, d := range l.p.Destinations {
		ds := DestinationStatus{Region: d.Region}
		if v := l.dests[d.Region]; v != nil {
			ds = *v
		}
		s.Destinations = append(s.Destinations, ds)
	}
	return s
}

// dest returns the status of a destination, creating it; l.mu is held.
func (l *loop) dest(region string) *DestinationStatus {
	ds := l.dests[region]
	if ds == nil {
		ds = &DestinationStatus{Region: region}
		l.dests[region] = ds
	}
	return ds
}

// retries returns the failing destinations of p due at now, and the
// earliest retry time of those that are not (zero if none).
func (l *loop) retries(p *policy.Policy, now time.Time) (due map[string]bool, next time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range p.Destinations {
		ds := l.dests[d.Region]
		if ds == nil || ds.Failures == 0 {
			continue
		}
		if !ds.NextRetry.After(now) {
			if due == nil {
				due = map[string]bool{}
			}
			due[d.Region] = true
		} else if next.IsZero() || ds.NextRetry.Before(next) {
			next = ds.NextRetry
		}
	}
	return due, next
}

func (l *loop) update(fn func(s *PolicyStatus)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(&l.status)
}

// runLoop runs the policy now, then on its interval, on wake-ups and, after
// a failure, with backoff; it returns when ctx ends.
func (r *Reconciler) runLoop(ctx context.Context, l *loop) {
	defer close(l.done)
	if l.prev != nil {
		// A loop of the same name, removed and added back, must finish
		// its run first: runs of one policy never overlap.
		select {
		case <-l.prev:
		case <-ctx.Done():
			return
		}
	}
	failures := 0
	full := true // a whole run; else a retry of the failing destinations
	var nextFull time.Time
	for {
		p := l.policy()
		var timer clock.Timer
		var fire <-chan time.Time
		if p.Enabled {
			if full {
				took, err := r.runOnce(ctx, l, p, nil)
				if ctx.Err() != nil {
					return
				}
				wait := p.Interval
				if err != nil {
					failures++
					wait = backoff(r.retryMin, failures, p.Interval)
				} else {
					failures = 0
				}
				nextFull = r.clk.Now().Add(wait)
				l.update(func(s *PolicyStatus) { s.NextRun = nextFull })
				timer = r.armTimer(l, p, nextFull)
				// Called once the next run is armed, so that a test that
				// moves a fake clock on this signal cannot miss the timer.
				if r.onRun != nil {
					r.onRun(p.Name, err, took)
				}
			} else {
				if due, _ := l.retries(p, r.clk.Now()); len(due) > 0 {
					_, err := r.runOnce(ctx, l, p, due)
					if ctx.Err() != nil {
						return
					}
					timer = r.armTimer(l, p, nextFull)
					if r.onRetry != nil {
						r.onRetry(p.Name, sortedKeys(due), err)
					}
				} else {
					timer = r.armTimer(l, p, nextFull)
				}
			}
			fire = timer.C()
		}
		full = false
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-l.wake:
			full = true
		case <-fire:
			full = !r.clk.Now().Before(nextFull)
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// armTimer returns a timer for the policy's next wake-up: its next run at
// nextFull, or the earliest retry of a failing destination before it.
func (r *Reconciler) armTimer(l *loop, p *policy.Policy, nextFull time.Time) clock.Timer {
	now := r.clk.Now()
	at := nextFull
	due, next := l.retries(p, now)
	switch {
	case len(due) > 0:
		at = now
	case !next.IsZero() && next.Before(at):
		at = next
	}
	return r.clk.NewTimer(max(at.Sub(now), 0))
}

// backoff returns min·2^(failures-1), capped at max.
func backoff(min time.Duration, failures int, max time.Duration) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
