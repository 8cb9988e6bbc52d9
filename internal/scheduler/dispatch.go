package scheduler

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/replicatord/replicatord/internal/job"
)

// errSkip aborts a store update whose precondition no longer holds.
var errSkip = errors.New("skip")

// dispatch admits queued jobs of a region into its free copy slots.
func (s *Scheduler) dispatch(ctx context.Context, region string) error {
	now := s.opts.Clock.Now()
	limit := s.opts.slots(region) + s.opts.Lookahead

	s.mu.Lock()
	conflict := s.conflict
	inFlight := 0
	perPolicy := map[string]int{}
	busySources := map[string]bool{}
	work := map[string]time.Duration{} // remaining work per source image
	var queued []*job.Job
	for _, j := range s.live {
		if conflict {
			work[j.SourceImageID] += s.est.duration(j)
			if j.State.InCloud() {
				busySources[j.SourceImageID] = true
			}
		}
		if j.DestinationRegion != region {
			continue
		}
		switch {
		case j.State.InCloud():
			inFlight++
			perPolicy[j.Policy]++
		case j.State == job.StateQueued:
			queued = append(queued, j)
		}
	}
	s.mu.Unlock()
	defer func() { s.reportLoad(region) }()

	free := limit - inFlight
	if free <= 0 || len(queued) == 0 {
		return nil
	}
	weight := func(j *job.Job) time.Duration {
		if conflict {
			return work[j.SourceImageID]
		}
		return s.est.duration(j)
	}
	sort.SliceStable(queued, func(a, b int) bool { return less(queued[a], queued[b], weight) })

	var wake time.Time
	taken := make([]bool, len(queued))
	for free > 0 {
		best := -1
		for i, j := range queued {
			if taken[i] {
				continue
			}
			if j.NextAttemptTime.After(now) {
				if wake.IsZero() || j.NextAttemptTime.Before(wake) {
					wake = j.NextAttemptTime
				}
				continue
			}
			if conflict && busySources[j.SourceImageID] {
				continue
			}
			if best >= 0 && tier(queued[best]) != tier(j) {
				break // sorted: later tiers are worse
			}
			// Within a tier, fairness: the policy with fewest copies in flight.
			if best < 0 || perPolicy[j.Policy] < perPolicy[queued[best].Policy] {
				best = i
			}
		}
		if best < 0 {
			break
		}
		taken[best] = true
		j := queued[best]
		admitted, err := s.update(ctx, j.ID, func(j *job.Job) error {
			if j.State != job.StateQueued || j.NextAttemptTime.After(now) {
				return errSkip
			}
			j.State = job.StateSubmitting
			j.Attempts++
			j.ClientToken = job.Token(j.ID, j.Attempts)
			j.SubmitTime = now
			j.Error = nil
			j.Retries = 0
			j.NextAttemptTime = time.Time{}
			return nil
		})
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return err
		}
		free--
		perPolicy[admitted.Policy]++
		busySources[admitted.SourceImageID] = true
		s.queue.Add(keyJob + admitted.ID)
	}
	if !wake.IsZero() {
		s.queue.AddAfter(keyDispatch+region, wake.Sub(now))
	}
	return nil
}

// tier is the part of the order that fairness may not cross: ad-hoc before
// policy jobs, then priority.
type tierKey struct {
	policy   bool
	priority int32
}

func tier(j *job.Job) tierKey { return tierKey{j.Policy != "", j.Priority} }

// less orders queued jobs: ad-hoc first, higher priority first, longer work
// first, older first.
func less(a, b *job.Job, weight func(*job.Job) time.Duration) bool {
	if (a.Policy == "") != (b.Policy == "") {
		return a.Policy == ""
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if wa, wb := weight(a), weight(b); wa != wb {
		return wa > wb
	}
	if !a.CreateTime.Equal(b.CreateTime) {
		return a.CreateTime.Before(b.CreateTime)
	}
	return a.ID < b.ID
}

func (s *Scheduler) reportLoad(region string) {
	if s.opts.Observer == nil {
		return
	}
	load := s.RegionLoad()[region]
	s.opts.Observer.RegionLoad(region, load[0], load[1])
}
