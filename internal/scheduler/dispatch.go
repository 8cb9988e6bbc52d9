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

// dispatch admits queued jobs of a region into its free copy slots: it
// takes a snapshot of the region (regionView), orders the queue, then
// picks (next) and admits (admit) one job at a time while slots are free.
func (s *Scheduler) dispatch(ctx context.Context, region string) error {
	now := s.opts.Clock.Now()
	limit := s.opts.inECSMax(region)

	v := s.regionView(region)
	defer func() { s.reportLoad(region) }()

	free := limit - v.inFlight
	if free <= 0 || len(v.queued) == 0 {
		return nil
	}
	weight := func(j *job.Job) time.Duration {
		if v.conflict {
			return v.work[j.SourceImageID]
		}
		return s.est.duration(j)
	}
	queued := v.queued
	sort.SliceStable(queued, func(a, b int) bool { return less(queued[a], queued[b], weight) })

	fair := s.fairness(region, queued)
	var wake time.Time
	taken := make([]bool, len(queued))
	for free > 0 {
		best, due := v.next(queued, taken, fair, now)
		if !due.IsZero() && (wake.IsZero() || due.Before(wake)) {
			wake = due
		}
		if best < 0 {
			break
		}
		urgent, more, at := s.wantMore(region, now, queued[best])
		if !more {
			// ECS holds LookaheadTime of work: look again when it holds
			// less, from the forecast (no call).
			if !at.IsZero() && (wake.IsZero() || at.Before(wake)) {
				wake = at
			}
			break
		}
		taken[best] = true
		admitted, err := s.admit(ctx, queued[best], now)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return err
		}
		if urgent {
			s.mu.Lock()
			s.urgent[admitted.ID] = true
			s.mu.Unlock()
		}
		free--
		v.perPolicy[admitted.Policy]++
		fair.served(admitted.Policy)
		v.busySources[admitted.SourceImageID] = true
		s.queue.Add(keyJob + admitted.ID)
	}
	if !wake.IsZero() {
		s.queue.AddAfter(keyDispatch+region, wake.Sub(now))
	}
	return nil
}

// wantMore reports whether the region's look-ahead wants the candidate
// submitted now. A copy slot that is idle always does. Beyond the slots,
// ECS is kept holding enough Waiting copies to last LookaheadTime: when the
// forecast says its queue would run dry sooner, the candidate goes in;
// otherwise at is when it would (or when a spare, see spares, comes
// within LookaheadTime), and a timer wakes admission then, from the
// forecast, with no call. So the queue is topped up as the forecast
// says copies start, not only when a poll has seen them start, and polls
// are left to see copies end (planPoll). The rest stays QUEUED here, where
// it is cheap to reorder or cancel. A candidate that outranks a copy ECS
// holds Waiting goes in at once (urgent): it waits behind them, at most
// LookaheadTime, and the poll plan looks when it is expected to start.
func (s *Scheduler) wantMore(region string, now time.Time, cand *job.Job) (urgent, more bool, at time.Time) {
	f := s.regionForecast(region, now)
	if !f.dry.After(now) {
		return false, true, time.Time{}
	}
	for _, q := range f.queue {
		if outranks(cand, q.j) {
			return true, true, time.Time{}
		}
	}
	if f.dry.Sub(now) > s.opts.LookaheadTime {
		spare, at := s.spares(region, f)
		if !spare {
			return false, true, time.Time{}
		}
		return false, false, minTime(f.dry.Add(-s.opts.LookaheadTime), at)
	}
	return false, true, time.Time{}
}

// spares reports whether ECS holds, beyond LookaheadTime's work, one
// Waiting copy more per copy expected to fail in the region, and if so
// until when (one of them then comes within LookaheadTime). A copy that
// ends CreateFailed frees its slot at a random point of its time, which
// no forecast foresees: with a spare Waiting, ECS gives the slot to it at
// once instead of leaving it idle until a poll sees the failure. Until
// priorEnds copies ended in the region, one spare is kept even with no
// failure seen: the first failure would otherwise leave its slot idle
// until the next poll, minutes where a spare costs one copy Waiting at
// ECS, still cancellable there.
func (s *Scheduler) spares(region string, f forecast) (enough bool, until time.Time) {
	n := s.est.failures(region, f.inECS)
	if n == 0 && s.est.unproven(region) {
		n = 1
	}
	if n == 0 {
		return true, f.dry
	}
	limit := f.now.Add(s.opts.LookaheadTime)
	k := sort.Search(len(f.queue), func(i int) bool { return f.queue[i].start.After(limit) })
	if len(f.queue)-k < n {
		return false, time.Time{}
	}
	return true, f.queue[len(f.queue)-n].start.Add(-s.opts.LookaheadTime)
}

// outranks reports whether a goes before b whatever their sizes: an
// ad-hoc copy before a policy's, then the higher priority.
func outranks(a, b *job.Job) bool {
	if (a.Policy == "") != (b.Policy == "") {
		return a.Policy == ""
	}
	return a.Priority > b.Priority
}

// regionView is what dispatch needs to know of one region, taken under
// the lock at its start.
type regionView struct {
	conflict    bool                     // Options.Conflict: one copy per source image at a time
	inFlight    int                      // the region's copies in ECS
	perPolicy   map[string]int           // of which, per policy
	busySources map[string]bool          // source images with a copy in ECS (any region; conflict only)
	work        map[string]time.Duration // remaining work per source image (conflict only)
	queued      []*job.Job               // the region's QUEUED jobs
}

func (s *Scheduler) regionView(region string) *regionView {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &regionView{
		conflict:    s.conflict,
		perPolicy:   map[string]int{},
		busySources: map[string]bool{},
		work:        map[string]time.Duration{},
	}
	for _, j := range s.live {
		if v.conflict {
			v.work[j.SourceImageID] += s.est.duration(j)
			if j.State.InCloud() {
				v.busySources[j.SourceImageID] = true
			}
		}
		if j.DestinationRegion != region {
			continue
		}
		switch {
		case j.State.InCloud():
			v.inFlight++
			v.perPolicy[j.Policy]++
		case j.State == job.StateQueued:
			v.queued = append(v.queued, j)
		}
	}
	return v
}

// next picks the queued job to admit next (-1: none now) from the sorted
// queue: the first tier with a job that is due, and within it the policy
// fairness puts first. due is the earliest retry time of the jobs it
// passed over because they are not due yet (zero: none).
func (v *regionView) next(queued []*job.Job, taken []bool, fair *fairQueue, now time.Time) (best int, due time.Time) {
	best = -1
	for i, j := range queued {
		if taken[i] {
			continue
		}
		if j.NextAttemptTime.After(now) {
			if due.IsZero() || j.NextAttemptTime.Before(due) {
				due = j.NextAttemptTime
			}
			continue
		}
		if v.conflict && v.busySources[j.SourceImageID] {
			continue
		}
		if best >= 0 && tier(queued[best]) != tier(j) {
			break // sorted: later tiers are worse
		}
		// Within a tier, fairness: the policy served least so far, then
		// the one with fewest copies in flight.
		if best < 0 || fair.before(j.Policy, queued[best].Policy, v.perPolicy) {
			best = i
		}
	}
	return best, due
}

// admit moves a queued job (as dispatch saw it) to SUBMITTING as a new
// attempt, with its ClientToken on disk before any CopyImage. errSkip: it
// is no longer queued and due.
func (s *Scheduler) admit(ctx context.Context, queued *job.Job, now time.Time) (*job.Job, error) {
	admitted, err := s.update(ctx, queued.ID, func(j *job.Job) error {
		if j.State != job.StateQueued || j.NextAttemptTime.After(now) {
			return errSkip
		}
		j.State = job.StateSubmitting
		j.Attempts++
		j.ClientToken = job.Token(j.ID, j.Attempts)
		j.LookupFirst = false // durable as SUBMITTING: a restart looks up anyway
		j.SubmitTime = now
		j.Error = nil
		j.Retries = 0
		j.NextAttemptTime = time.Time{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if queued.LookupFirst {
		// A retried job: an earlier attempt may have left a copy.
		s.mu.Lock()
		s.recovering[admitted.ID] = true
		s.mu.Unlock()
	}
	return admitted, nil
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

// fairQueue shares a region's slots between policies of one priority by
// start-time fair queuing: each policy's service is the number of copies
// admitted for it; the one with the least goes next. A policy that had
// nothing queued starts at the region's virtual time (the least service of
// the policies that were waiting), so it cannot bank credit while idle and
// then take every slot.
type fairQueue struct {
	service    map[string]int64
	backlogged map[string]int // queued jobs per policy
	vtime      int64
}

// fairness returns the region's fair queue, updated with the policies that
// have jobs queued now. Only the region's dispatch (never concurrent for
// one region) uses it.
func (s *Scheduler) fairness(region string, queued []*job.Job) *fairQueue {
	s.mu.Lock()
	f := s.fair[region]
	if f == nil {
		f = &fairQueue{service: map[string]int64{}}
		s.fair[region] = f
	}
	s.mu.Unlock()
	now := map[string]int{}
	for _, j := range queued {
		now[j.Policy]++
	}
	for p := range now {
		if f.backlogged[p] == 0 && f.service[p] < f.vtime {
			f.service[p] = f.vtime
		}
	}
	for p := range f.service {
		if now[p] == 0 && f.service[p] <= f.vtime {
			delete(f.service, p) // idle and owed nothing: forget it
		}
	}
	f.backlogged = now
	return f
}

// before reports whether policy a goes before b: less service, then fewer
// copies in flight, then the shorter backlog (a small policy finishes
// instead of waiting behind a large one).
func (f *fairQueue) before(a, b string, inFlight map[string]int) bool {
	if f.service[a] != f.service[b] {
		return f.service[a] < f.service[b]
	}
	if inFlight[a] != inFlight[b] {
		return inFlight[a] < inFlight[b]
	}
	return f.backlogged[a] < f.backlogged[b]
}

func (f *fairQueue) served(policy string) {
	f.service[policy]++
	f.backlogged[policy]--
	first := true
	for p, n := range f.backlogged {
		if n <= 0 {
			continue
		}
		if first || f.service[p] < f.vtime {
			f.vtime = f.service[p]
			first = false
		}
	}
}
