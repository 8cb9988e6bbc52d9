package reconcile

import (
	"time"

	"github.com/replicatord/replicatord/internal/policy"
)

// PolicyStatus is what ListPolicies shows of a policy.
type PolicyStatus struct {
	Name     string
	Policy   *policy.Policy // the definition in force
	Enabled  bool
	Interval time.Duration
	Running  bool // a run is in progress
	// LastRun is when the last finished run started; zero before the first.
	LastRun      time.Time
	LastDuration time.Duration
	NextRun      time.Time // zero when disabled or not scheduled yet
	LastError    string    // "" when the last run succeeded
	Runs         int       // runs finished since the daemon started
	Failures     int       // of which failed
	// Matched is how many source images the selectors matched last run.
	Matched int
	// Actions counts the items of the last run's plan by action.
	Actions map[policy.Action]int
	// Destinations is the listing status of each destination, in the
	// policy's order.
	Destinations []DestinationStatus
}

// DestinationStatus is the listing status of one destination of a policy.
// A destination whose listing failed transiently is left out of the run
// (nothing planned there) and retried on its own.
type DestinationStatus struct {
	Region string
	// LastError is the error of the last failed listing or retry; "" when
	// the destination is healthy.
	LastError string
	// Failures counts the consecutive failures; 0 when healthy.
	Failures int
	// NextRetry is when the destination is retried alone; zero when it is
	// healthy (the policy's runs cover it).
	NextRetry time.Time
	// LastListed is when the destination was last listed in a run that
	// went through; zero before.
	LastListed time.Time
}
