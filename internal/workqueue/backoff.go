package workqueue

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff is the per-key exponential delay used by AddRateLimited: the n-th
// requeue (n from 0) waits Base·2ⁿ, capped at Max, less up to Jitter of
// itself. Jitter only subtracts, so Max stays a hard ceiling and keys that
// all reached the cap still spread out instead of retrying in lockstep.
type Backoff struct {
	Base time.Duration // delay of the first requeue
	Max  time.Duration // ceiling
	// Jitter in [0, 1] is the largest fraction removed at random; 0 is
	// deterministic.
	Jitter float64
	// Rand is the jitter source; nil uses the global one. A *rand.Rand is
	// not safe for concurrent use: the queue calls When under its lock, so
	// do not share one Rand between queues.
	Rand *rand.Rand
}

// DefaultBackoff suits calls to a cloud API: one second doubling to five
// minutes, with 20% jitter.
func DefaultBackoff() Backoff {
	return Backoff{Base: time.Second, Max: 5 * time.Minute, Jitter: 0.2}
}

// normalized returns b with unusable fields replaced: a zero Backoff becomes
// DefaultBackoff, a non-positive Base or Max takes the default, Max is at least
// Base, and Jitter is clamped to [0, 1]. Options come from code or validated
// config, so this repairs instead of failing.
func (b Backoff) normalized() Backoff {
	if b == (Backoff{}) {
		return DefaultBackoff()
	}
	d := DefaultBackoff()
	if b.Base <= 0 {
		b.Base = d.Base
	}
	if b.Max <= 0 {
		b.Max = d.Max
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	if !(b.Jitter > 0) { // also catches NaN
		b.Jitter = 0
	}
	if b.Jitter > 1 {
		b.Jitter = 1
	}
	return b
}

// When returns the delay before the n-th requeue (n counts from 0).
func (b Backoff) When(n int) time.Duration {
	if n < 0 {
		n = 0
	}
	// Float math cannot overflow the way Base<<n does for large n.
	d := b.Max
	if f := float64(b.Base) * math.Pow(2, float64(n)); f < float64(b.Max) {
		d = time.Duration(f)
	}
	if b.Jitter > 0 {
		r := rand.Float64()
		if b.Rand != nil {
			r = b.Rand.Float64()
		}
		d -= time.Duration(float64(d) * b.Jitter * r)
	}
	return d
}
