package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/replicatord/replicatord/internal/clock"
)

// Limiter paces calls per action; see the package doc. It is safe for
// concurrent use.
type Limiter struct {
	opts      Options
	clock     clock.Clock
	realClock bool     // ctx deadlines are comparable with clock times
	buckets   sync.Map // action string → *bucket
}

// bucket is one action's token bucket and its AIMD state.
type bucket struct {
	lim            *rate.Limiter // has its own lock
	ceiling, floor float64

	mu           sync.Mutex
	rate         float64
	throttled    bool      // lastThrottle is set
	lastThrottle time.Time // when the last decrease happened
	accrue       time.Time // successes after this instant raise the rate
}

// New returns a Limiter; see Options for the defaults of zero fields.
func New(opts Options) *Limiter {
	o := opts.normalized()
	_, isReal := o.Clock.(clock.Real)
	return &Limiter{opts: o, clock: o.Clock, realClock: isReal}
}

func (l *Limiter) bucket(action string) *bucket {
	if b, ok := l.buckets.Load(action); ok {
		return b.(*bucket)
	}
	ceiling := l.ceiling(action)
	burst := l.opts.Burst
	if burst == 0 {
		burst = max(1, int(math.Ceil(ceiling)))
	}
	b := &bucket{
		lim:     rate.NewLimiter(rate.Limit(ceiling), burst),
		ceiling: ceiling,
		floor:   min(l.opts.MinRate, ceiling),
		rate:    ceiling,
	}
	actual, _ := l.buckets.LoadOrStore(action, b)
	return actual.(*bucket)
}

func (l *Limiter) ceiling(action string) float64 {
	if r, ok := l.opts.PerAction[action]; ok {
		return r
	}
	return l.opts.Rate
}

// Wait blocks until action may be called once, or ctx ends. If ctx has a
// deadline that the wait would pass, it fails at once with an error wrapping
// context.DeadlineExceeded rather than sleep in vain. A wait given up returns
// its token, so the callers behind it are not delayed for nothing.
func (l *Limiter) Wait(ctx context.Context, action string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rate limit for %s: %w", action, err)
	}
	b := l.bucket(action)
	now := l.clock.Now()
	if b.lim.AllowN(now, 1) { // the common case, without allocating
		return nil
	}
	r := b.lim.ReserveN(now, 1)
	if !r.OK() { // cannot happen: burst >= 1
		return fmt.Errorf("rate limit for %s: no token can ever be granted", action)
	}
	delay := r.DelayFrom(now)
	if delay == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && l.realClock && dl.Sub(now) < delay {
		r.CancelAt(now)
		return fmt.Errorf("rate limit for %s: the next call is allowed in %v, after the context deadline: %w",
			action, delay.Round(time.Millisecond), context.DeadlineExceeded)
	}
	t := clock.NewTimerAt(l.clock, now.Add(delay))
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		t.Stop()
		r.CancelAt(l.clock.Now())
		return fmt.Errorf("rate limit for %s: %w", action, ctx.Err())
	}
}

// OnThrottle records that a call of action was throttled by the provider:
// the action's rate is multiplied by Decrease (not below MinRate) and its
// banked tokens are dropped. Throttles within Cooldown of the last decrease
// are ignored: they are the other in-flight calls of the same burst.
func (l *Limiter) OnThrottle(action string) {
	b := l.bucket(action)
	now := l.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.throttled && now.Sub(b.lastThrottle) < l.opts.Cooldown {
		return
	}
	b.throttled, b.lastThrottle = true, now
	b.accrue = now.Add(l.opts.Cooldown)
	b.rate = max(b.floor, b.rate*l.opts.Decrease)
	b.lim.SetLimitAt(now, rate.Limit(b.rate))
	// Spend what is banked, so the next call waits a full interval at the
	// new rate instead of bursting into a provider that just said no.
	if n := int(b.lim.TokensAt(now)); n > 0 {
		b.lim.ReserveN(now, n)
	}
}

// OnSuccess records a successful call of action: once the cooldown of the
// last throttle is over, the rate grows by Increase for every second since
// the last adjustment, up to the action's ceiling.
func (l *Limiter) OnSuccess(action string) {
	b := l.bucket(action)
	now := l.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !now.After(b.accrue) {
		return
	}
	if b.rate < b.ceiling {
		b.rate = min(b.ceiling, b.rate+l.opts.Increase*now.Sub(b.accrue).Seconds())
		b.lim.SetLimitAt(now, rate.Limit(b.rate))
	}
	b.accrue = now
}

// Rate returns action's current rate in requests per second.
func (l *Limiter) Rate(action string) float64 {
	v, ok := l.buckets.Load(action)
	if !ok {
		return l.ceiling(action)
	}
	b := v.(*bucket)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate
}

// Rates returns the current rate of every action used so far, for metrics.
func (l *Limiter) Rates() map[string]float64 {
	out := make(map[string]float64)
	l.buckets.Range(func(k, v any) bool {
		b := v.(*bucket)
		b.mu.Lock()
		out[k.(string)] = b.rate
		b.mu.Unlock()
		return true
	})
	return out
}
