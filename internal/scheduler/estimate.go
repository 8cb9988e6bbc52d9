package scheduler

import (
	"math"
	"sync"
	"time"

	"github.com/replicatord/replicatord/internal/job"
)

// estimator learns each route's copy rate from finished copies, to order the
// queue (longest first) and to estimate plan durations, and each
// destination region's share of copies that end CreateFailed.
type estimator struct {
	mu sync.Mutex
	// secPerGiB per route, exponentially weighted.
	secPerGiB map[string]float64
	overall   float64
	// failShare per destination region, exponentially weighted over the
	// copies that ended there (Available or CreateFailed); failAll the
	// same over every region's, and ended counts each region's ends.
	failShare map[string]float64
	failAll   float64
	ended     map[string]int
}

// defaultSecPerGiB is the prior before any copy finished: about 50 MiB/s.
const defaultSecPerGiB = 20.0

func newEstimator() *estimator {
	return &estimator{secPerGiB: map[string]float64{}, failShare: map[string]float64{}, ended: map[string]int{}}
}

// failWeight is the weight of one copy's outcome in failShare: about the
// last 20 copies of the region count.
const failWeight = 0.05

// observeOutcome learns from a copy that ended in region, failed or not.
func (e *estimator) observeOutcome(region string, failed bool) {
	v := 0.0
	if failed {
		v = 1
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failShare[region] = (1-failWeight)*e.failShare[region] + failWeight*v
	e.failAll = (1-failWeight)*e.failAll + failWeight*v
	e.ended[region]++
}

// priorEnds is how many copies must end in a region before its own
// outcomes alone size the spare Waiting copies (dispatch.go, spares).
const priorEnds = 10

// unproven reports whether too few copies ended in region to trust that
// none will fail there.
func (e *estimator) unproven(region string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ended[region] < priorEnds
}

// failures is how many of n copies in region are expected to end
// CreateFailed, rounded up: each frees its slot before its expected end,
// so ECS starts the next Waiting copy sooner than the forecast says. The
// share is the region's or, where more, every region's: failures tend to
// be the source's or the account's, seen first wherever copies end first.
func (e *estimator) failures(region string, n int) int {
	e.mu.Lock()
	share := math.Max(e.failShare[region], e.failAll)
	e.mu.Unlock()
	// Below one copy in a hundred the share is the prior's residue, not
	// a rate worth a margin.
	if share < 0.01 || n <= 0 {
		return 0
	}
	return int(math.Ceil(share * float64(n)))
}

func (e *estimator) observe(route string, sizeGiB int64, d time.Duration) {
	if sizeGiB <= 0 || d <= 0 {
		return
	}
	v := d.Seconds() / float64(sizeGiB)
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.secPerGiB[route]; ok {
		e.secPerGiB[route] = 0.7*old + 0.3*v
	} else {
		e.secPerGiB[route] = v
	}
	if e.overall == 0 {
		e.overall = v
	} else {
		e.overall = 0.9*e.overall + 0.1*v
	}
}

func (e *estimator) rate(route string) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := e.secPerGiB[route]; ok {
		return v
	}
	if e.overall > 0 {
		return e.overall
	}
	return defaultSecPerGiB
}

// observeProgress learns from a copy's progress rate (percent per
// second) while it runs: its whole copy time is 100/rate.
func (e *estimator) observeProgress(route string, sizeGiB int64, perSec float64) {
	if perSec > 0 {
		e.observe(route, sizeGiB, time.Duration(100/perSec*float64(time.Second)))
	}
}

// known reports whether a copy on the route has finished (the estimate
// is learned, not the prior).
func (e *estimator) known(route string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.secPerGiB[route]
	return ok
}

// duration estimates how long j's copy takes once ECS starts it.
func (e *estimator) duration(j *job.Job) time.Duration {
	size := j.SizeGiB
	if size <= 0 {
		size = 1
	}
	return time.Duration(float64(size) * e.rate(j.Route()) * float64(time.Second))
}

// Estimate returns the expected copy time of a job of size sizeGiB on a route.
func (s *Scheduler) Estimate(sourceRegion, destRegion string, sizeGiB int64) time.Duration {
	return s.est.duration(&job.Job{SourceRegion: sourceRegion, DestinationRegion: destRegion, SizeGiB: sizeGiB})
}

// Slots returns the copy slots of a region.
func (s *Scheduler) Slots(region string) int { return s.opts.slots(region) }
