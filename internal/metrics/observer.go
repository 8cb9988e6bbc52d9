package metrics

import (
	"strings"
	"time"
)

// The methods below let a *Metrics serve directly as the scheduler's
// Observer (scheduler.Options.Observer), whose events carry strings: a
// route "source>destination" and state names.

// CopyFinished records a finished copy on route "source>destination".
func (m *Metrics) CopyFinished(route string, d time.Duration) {
	src, dst, ok := strings.Cut(route, ">")
	if !ok {
		src, dst = "unknown", route
	}
	m.ObserveCopy(src, dst, d)
}

// Throttled is ObserveThrottle.
func (m *Metrics) Throttled(action string) { m.ObserveThrottle(action) }

// RegionLoad is SetQueue.
func (m *Metrics) RegionLoad(region string, queued, inFlight int) {
	m.SetQueue(region, queued, inFlight)
}

// Transition counts a transition given by state names (as job.State's
// String prints them).
func (m *Metrics) Transition(from, to string) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(sanitize(strings.ToLower(from), "unknown"), sanitize(strings.ToLower(to), "unknown")).Inc()
}

// CancelRetry counts a cancel to be tried again, by ECS error code.
func (m *Metrics) CancelRetry(code string) {
	if m == nil {
		return
	}
	m.cancelRetries.WithLabelValues(sanitize(code, "Unknown")).Inc()
}

// Refused counts an ECS call not sent for want of proof of ownership.
func (m *Metrics) Refused(action string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(sanitize(action, "Unknown")).Inc()
}
