package ratelimit

import (
	"errors"
	"math"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
)

// Defaults for zero Options fields.
const (
	// DefaultRate is 80% of ECS's 1000 requests per 60 s per action.
	DefaultRate     = 1000.0 / 60 * 0.8
	DefaultMinRate  = 0.1 // one call every ten seconds
	DefaultIncrease = 0.1 // req/s regained per second of success
	DefaultDecrease = 0.5
	DefaultCooldown = 10 * time.Second
)

// Options configures a Limiter. Zero fields take the defaults above; Burst
// 0 is one second's worth of an action's ceiling (at least 1).
type Options struct {
	// Rate is the ceiling in requests per second for every action not in
	// PerAction.
	Rate float64
	// Burst is the bucket size of every action.
	Burst int
	// PerAction overrides Rate for the named actions.
	PerAction map[string]float64
	// MinRate is the floor OnThrottle never goes below (an action whose
	// ceiling is lower keeps its ceiling as floor).
	MinRate float64
	// Increase is the additive step: req/s regained per second of success.
	Increase float64
	// Decrease in (0, 1) multiplies the rate on a throttle.
	Decrease float64
	// Cooldown is how long after a decrease further throttles are ignored
	// and successes do not raise the rate.
	Cooldown time.Duration
	// Clock is the time source; nil is clock.Real.
	Clock clock.Clock
}

// Validate checks options that come from configuration. It returns every
// problem, each an errdefs.ErrInvalidArgument naming its field. New does not
// require it: it replaces invalid values with defaults.
func (o Options) Validate() error {
	var errs []error
	if !validRate(o.Rate, true) {
		errs = append(errs, errdefs.Invalid("rate", "must be a finite number of requests per second > 0, got %v", o.Rate))
	}
	if o.Burst < 0 {
		errs = append(errs, errdefs.Invalid("burst", "must be >= 0, got %d", o.Burst))
	}
	for action, r := range o.PerAction {
		if action == "" {
			errs = append(errs, errdefs.Invalid("per_action", "action name must not be empty"))
		}
		if !validRate(r, false) {
			errs = append(errs, errdefs.Invalid("per_action."+action, "must be a finite number of requests per second > 0, got %v", r))
		}
	}
	if !validRate(o.MinRate, true) {
		errs = append(errs, errdefs.Invalid("min_rate", "must be a finite number of requests per second > 0, got %v", o.MinRate))
	}
	if !validRate(o.Increase, true) {
		errs = append(errs, errdefs.Invalid("increase", "must be a finite number of requests per second > 0, got %v", o.Increase))
	}
	if o.Decrease != 0 && !(o.Decrease > 0 && o.Decrease < 1) {
		errs = append(errs, errdefs.Invalid("decrease", "must be a factor between 0 and 1 exclusive, got %v", o.Decrease))
	}
	if o.Cooldown < 0 {
		errs = append(errs, errdefs.Invalid("cooldown", "must be >= 0, got %v", o.Cooldown))
	}
	return errors.Join(errs...)
}

// validRate accepts a positive finite number, and 0 when zeroOK (meaning
// "use the default").
func validRate(r float64, zeroOK bool) bool {
	if r == 0 {
		return zeroOK
	}
	return r > 0 && !math.IsInf(r, 0) // NaN fails r > 0
}

// normalized returns o with every zero or invalid field replaced by its
// default, and PerAction copied so the caller's map can change freely.
func (o Options) normalized() Options {
	orDefault := func(v, d float64) float64 {
		if v == 0 || !validRate(v, false) {
			return d
		}
		return v
	}
	o.Rate = orDefault(o.Rate, DefaultRate)
	o.MinRate = orDefault(o.MinRate, DefaultMinRate)
	o.Increase = orDefault(o.Increase, DefaultIncrease)
	if !(o.Decrease > 0 && o.Decrease < 1) {
		o.Decrease = DefaultDecrease
	}
	if o.Burst < 0 {
		o.Burst = 0
	}
	if o.Cooldown <= 0 {
		o.Cooldown = DefaultCooldown
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	per := make(map[string]float64, len(o.PerAction))
	for a, r := range o.PerAction {
		if validRate(r, false) {
			per[a] = r
		}
	}
	o.PerAction = per
	return o
}
