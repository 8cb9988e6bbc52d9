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
}

func newLoop(p *policy.Policy, prev <-chan struct{}) *loop {
	l := &loop{wake: make(chan struct{}, 1), done: make(chan struct{}), prev: prev, p: p}
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
	return s
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
	for {
		p := l.policy()
		var timer clock.Timer
		var fire <-chan time.Time
		if p.Enabled {
			took, err := r.runOnce(ctx, l, p)
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
			next := r.clk.Now().Add(wait)
			l.update(func(s *PolicyStatus) { s.NextRun = next })
			timer = r.clk.NewTimer(wait)
			fire = timer.C()
			// Called once the next run is armed, so that a test that
			// moves a fake clock on this signal cannot miss the timer.
			if r.onRun != nil {
				r.onRun(p.Name, err, took)
			}
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-l.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
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
