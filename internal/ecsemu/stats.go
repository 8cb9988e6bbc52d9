package ecsemu

import (
	"sort"
	"time"
)

// Pseudo action names for the counters.
const (
	actionNone    = "(none)"    // the request named no action or could not be parsed
	actionUnknown = "(unknown)" // an action the emulator does not know
)

// Stats are the emulator's counters and a summary of its state, as the
// admin endpoint GET /_ecsemu/stats shows them.
type Stats struct {
	// Calls counts API calls by action and result: "200" for success, else
	// the error code, or Hung, Dropped, ClientClosed.
	Calls map[string]map[string]int64 `json:"calls"`
	// Throttled counts calls refused by the token bucket.
	Throttled int64 `json:"throttled"`
	// Hanging is how many requests are blocked in a hang fault now.
	Hanging int64 `json:"hanging"`
	// Faults counts injected faults by action and kind
	// (InternalError, ServiceUnavailable, Hang, Drop).
	Faults map[string]map[string]int64 `json:"faults"`
	// CopiesSubmitted and CopiesCancelled count by destination region.
	CopiesSubmitted map[string]int64 `json:"copiesSubmitted"`
	CopiesCancelled map[string]int64 `json:"copiesCancelled"`
	// Images counts the images present now by region and status.
	Images map[string]map[string]int `json:"images"`
	// Copies counts the copies present now by destination region and status.
	Copies map[string]map[string]int `json:"copies"`
	// SnapshotGiB is the snapshot storage held per region (every image);
	// CopiedSnapshotGiB the part held by copies, which ECS bills.
	SnapshotGiB       map[string]int64 `json:"snapshotGiB"`
	CopiedSnapshotGiB map[string]int64 `json:"copiedSnapshotGiB"`
	// TokensIssued counts STS credentials issued (AssumeRole,
	// AssumeRoleWithOIDC); TokensRefused calls refused because their
	// SecurityToken had expired.
	TokensIssued  int64 `json:"tokensIssued"`
	TokensRefused int64 `json:"tokensRefused"`
	// StateErrors counts failed writes of the state file (each answered
	// 500 InternalError).
	StateErrors int64 `json:"stateErrors"`
	// Sessions is how many STS credentials are still valid.
	Sessions int `json:"sessions"`
	// Time is the emulator clock when the stats were taken.
	Time time.Time `json:"time"`
}

// counters are the resettable part of Stats. Guarded by Emulator.mu.
type counters struct {
	Calls           map[string]map[string]int64
	Throttled       int64
	Faults          map[string]map[string]int64
	CopiesSubmitted map[string]int64
	CopiesCancelled map[string]int64
	// TokensIssued counts STS credentials issued; TokensRefused ECS or STS
	// calls refused because their SecurityToken had expired.
	TokensIssued, TokensRefused int64
	// StateErrors counts failed writes of the state file.
	StateErrors int64
	// FailAt is, per copy started that will end CreateFailed (by its
	// image id), the share of its duration after which it fails.
	FailAt map[string]float64
}

func (c *counters) reset() {
	*c = counters{
		Calls:           map[string]map[string]int64{},
		Faults:          map[string]map[string]int64{},
		CopiesSubmitted: map[string]int64{},
		CopiesCancelled: map[string]int64{},
		FailAt:          map[string]float64{},
	}
}

func (c *counters) call(action, code string) {
	inc2(c.Calls, action, code)
}

func (c *counters) fault(action, kind string) {
	inc2(c.Faults, action, kind)
}

func inc2(m map[string]map[string]int64, a, b string) {
	inner := m[a]
	if inner == nil {
		inner = map[string]int64{}
		m[a] = inner
	}
	inner[b]++
}

// Stats returns the counters and a summary of the state at the clock's now.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clk.Now()
	s := Stats{
		Calls:             map[string]map[string]int64{},
		Throttled:         e.counters.Throttled,
		Hanging:           e.hanging,
		Faults:            map[string]map[string]int64{},
		CopiesSubmitted:   copyMap(e.counters.CopiesSubmitted),
		CopiesCancelled:   copyMap(e.counters.CopiesCancelled),
		Images:            map[string]map[string]int{},
		Copies:            map[string]map[string]int{},
		SnapshotGiB:       map[string]int64{},
		CopiedSnapshotGiB: map[string]int64{},
		TokensIssued:      e.counters.TokensIssued,
		TokensRefused:     e.counters.TokensRefused,
		StateErrors:       e.counters.StateErrors,
		Time:              now.UTC(),
	}
	authNow := now
	if e.authClk != nil {
		authNow = e.authClk.Now()
	}
	for _, ss := range e.sessions {
		if authNow.Before(ss.Expires) {
			s.Sessions++
		}
	}
	for a, m := range e.counters.Calls {
		s.Calls[a] = copyMap(m)
	}
	for a, m := range e.counters.Faults {
		s.Faults[a] = copyMap(m)
	}
	for _, im := range e.images {
		st := im.status(now)
		incInt(s.Images, im.Region, st)
		gib := im.snapshotGiB(now)
		s.SnapshotGiB[im.Region] += gib
		if im.copy != nil {
			incInt(s.Copies, im.Region, st)
			s.CopiedSnapshotGiB[im.Region] += gib
		}
	}
	return s
}

func incInt(m map[string]map[string]int, a, b string) {
	inner := m[a]
	if inner == nil {
		inner = map[string]int{}
		m[a] = inner
	}
	inner[b]++
}

func copyMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// CopyFailures returns, for every copy started since New or the last
// reset that ends (or ended) CreateFailed, by the copy's image id, the
// share of its duration after which it fails; copies that succeed are
// absent. The fate is drawn when the copy is accepted, so a benchmark can
// replay ECS's queue exactly even after a client deleted the failed image.
func (e *Emulator) CopyFailures() map[string]float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return copyMap(e.counters.FailAt)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
