package main

import (
	"time"
)

// etaSmoothing is the weight of the newest rate sample. Progress from ECS
// comes in coarse steps, so one sample alone swings the ETA too much.
const etaSmoothing = 0.3

// estimator turns a job's progress observations into a rate and an ETA.
// Observations are ECS's figures timed by progress_time (update_time from
// an older daemon; server time), so the rate does not depend on when
// replctl happened to receive them. The live view's ETA comes from it only
// when the daemon sends no observed_remaining (an older daemon, or no time
// left known); otherwise it is the daemon's extrapolation (progress.go).
type estimator struct {
	have  bool
	lastP int32
	lastT time.Time
	rate  float64 // percent per second, smoothed; 0 until two samples
}

// observe records progress p at time t. A stall keeps the old sample so the
// next rate spans the stall; progress going back (a new attempt) resets.
func (e *estimator) observe(p int32, t time.Time) {
	switch {
	case !e.have || p < e.lastP:
		*e = estimator{have: true, lastP: p, lastT: t}
		return
	case p == e.lastP:
		return
	}
	dt := t.Sub(e.lastT).Seconds()
	if dt <= 0 {
		e.lastP = p
		return
	}
	r := float64(p-e.lastP) / dt
	if e.rate == 0 {
		e.rate = r
	} else {
		e.rate = etaSmoothing*r + (1-etaSmoothing)*e.rate
	}
	e.lastP, e.lastT = p, t
}

// eta returns the estimated time left at now, from the observed rate, or
// fallback (the job's own remaining, from ECS) until a rate is known.
func (e *estimator) eta(now time.Time, fallback time.Duration, haveFallback bool) (time.Duration, bool) {
	if e.rate > 0 {
		left := time.Duration(float64(100-e.lastP)/e.rate*float64(time.Second)) - now.Sub(e.lastT)
		if left > 0 {
			return left, true
		}
	}
	if haveFallback {
		return fallback, true
	}
	return 0, false
}
