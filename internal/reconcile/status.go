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
}
