package scheduler

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/failpoint"
	"github.com/replicatord/replicatord/internal/job"
)

// poll refreshes every in-flight copy of a region with one DescribeImages
// call per 100 copies, then plans the next poll (planPoll) and, with jobs
// still queued here, lets admission top up ECS's queue.
func (s *Scheduler) poll(ctx context.Context, region string) error {
	jobs, queued := s.pollTargets(region)
	if len(jobs) == 0 {
		return nil
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID < jobs[b].ID })

	look := s.opts.PollMax // the latest the next poll may come, as the copies say
	for start := 0; start < len(jobs); start += cloud.MaxIDsPerDescribe {
		batch := jobs[start:min(start+cloud.MaxIDsPerDescribe, len(jobs))]
		listed, err := s.pollBatch(ctx, region, batch, &look)
		if err != nil {
			return err
		}
		if !listed {
			if ctx.Err() != nil {
				return nil
			}
			// Transient or not, the copies are still there: look again soon.
			s.schedulePoll(region, backoff(s.opts.PollMin, s.opts.PollMax, 2))
			return nil
		}
	}
	s.replan(region, look)
	if queued > 0 {
		s.queue.Add(keyDispatch + region)
	}
	return nil
}

// pollTargets returns the region's copies to poll (its jobs with a copy in
// ECS) and how many of its jobs are QUEUED. The poll plans the next one
// when it ends, from the live view as it is then, so copies accepted
// while it runs are planned for too; until then none is pending.
func (s *Scheduler) pollTargets(region string) (jobs []*job.Job, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nextPoll, region)
	for _, j := range s.live {
		if j.DestinationRegion != region {
			continue
		}
		if j.State == job.StateQueued {
			queued++
		}
		if j.DestinationImageID != "" &&
			(j.State == job.StateWaiting || j.State == job.StateCopying || j.State == job.StateCancelling) {
			jobs = append(jobs, j)
		}
	}
	return jobs, queued
}

// pollBatch describes one batch of at most 100 copies and observes each.
// listed is false when DescribeImages failed (nothing was observed); err
// is a store failure. look is lowered to what the copies ask for (a copy
// not yet listed, a cancel in progress).
//
// Progress is kept out of the per-copy fsync: the updates of copies that
// are still Waiting or Creating (progress, time left, WAITING to COPYING)
// act on nothing, so they are made concurrently and the store commits them
// together, in one transaction per poll. Every other outcome (a copy
// done, failed, gone, cancelled) is written on its own before what
// depends on it, as always.
func (s *Scheduler) pollBatch(ctx context.Context, region string, batch []*job.Job, look *time.Duration) (listed bool, err error) {
	ids := make([]string, len(batch))
	for i, j := range batch {
		ids[i] = j.DestinationImageID
	}
	var imgs []cloud.Image
	if err := s.call(ctx, cloud.ActionDescribeImages, func(ctx context.Context) error {
		var err error
		imgs, err = s.cloud.DescribeImages(ctx, cloud.ImageQuery{Region: region, IDs: ids, Statuses: cloud.AllStatuses})
		return err
	}); err != nil {
		return false, nil
	}
	byID := make(map[string]cloud.Image, len(imgs))
	for _, im := range imgs {
		byID[im.ID] = im
	}
	// Progress first, so that admission, woken by the copies that ended,
	// sees the ones that started as COPYING.
	var progress []func() error
	var rest []*job.Job
	for _, j := range batch {
		im, ok := byID[j.DestinationImageID]
		if ok && j.State != job.StateCancelling && (im.Status == cloud.StatusWaiting || im.Status == cloud.StatusCreating) {
			ctx := withJob(ctx, j)
			progress = append(progress, func() error { return s.observeRunning(ctx, j, im, s.opts.Clock.Now()) })
			continue
		}
		rest = append(rest, j)
	}
	if err := together(progress); err != nil {
		return true, err
	}
	for _, j := range rest {
		im, ok := byID[j.DestinationImageID]
		o, err := s.observe(withJob(ctx, j), j, im, ok)
		if err != nil {
			return true, err
		}
		if o.look > 0 {
			*look = min(*look, o.look)
		}
	}
	return true, nil
}

// together runs fns concurrently and returns the first error.
func together(fns []func() error) error {
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn() }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// replan schedules the region's next poll from its forecast (planPoll),
// no later than look from now.
func (s *Scheduler) replan(region string, look time.Duration) {
	now := s.opts.Clock.Now()
	f := s.regionForecast(region, now)
	at, ok := s.planPoll(region, f, f.queued > 0)
	if !ok {
		return
	}
	d := min(max(at.Sub(now), s.opts.PollMin), look)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("next poll", "region", region, "in", d, "in_ecs", f.inECS, "waiting", len(f.queue), "queued", f.queued, "first_end", f.ends[0].Sub(now))
	}
	s.schedulePoll(region, d)
}

// planPoll is when the region is next worth a look (false: no copy in
// ECS). A poll is worth its call when something has ended, so it comes
// after an expected end, as late as three promises allow:
//   - completion is seen within DetectLag of the first end after now
//     (aiming at seven eighths of it: the eighth left is for the
//     forecast's error); where copies fail, at once as soon as nothing is
//     queued here, for a failed copy's next attempt;
//   - with jobs still queued here, ECS's queue is seen before it runs dry
//     where the forecast cannot keep it topped up: copies fail (a failed
//     copy frees its slot before its expected end, so the poll comes a
//     quarter of LookaheadTime early), or ECS already holds Lookahead
//     copies beyond the slots. Otherwise admission's timer tops the queue
//     up before it runs dry, and a poll planned for today's dry time would
//     come too early: a plan only ever moves a poll earlier
//     (schedulePoll), so the top-up could not move it later;
//   - a waiting copy that was let in ahead of the look-ahead (it outranks
//     what ECS holds) is seen COPYING when it is expected to start.
//
// With jobs still queued here, the poll comes at that limit: every end
// up to it is seen by one call, and ECS's queue, topped up by admission,
// keeps the slots busy meanwhile. With none queued the region's end is
// near, and its last copy may be the fleet's last: the poll comes a
// tenth of DetectLag after the last end expected before the limit
// (copies of similar size that start together end together, and a poll
// on the dot of a cluster's forecast sees only part of it), so the last
// end of each poll's span, and so the region's last, is seen a tenth of
// DetectLag after it, and the ends before it in the span with it. (A
// poll a tenth of DetectLag after every one of the last copies' ends
// spent a call per copy there, about two per region more than needed.)
// PollMax bounds the wait whatever the forecast says.
func (s *Scheduler) planPoll(region string, f forecast, queued bool) (time.Time, bool) {
	if !f.busy || len(f.ends) == 0 {
		return time.Time{}, false
	}
	limit := s.lagLimit(f)
	fails := s.est.failures(region, f.inECS) > 0
	switch {
	case !queued && fails:
		// Where copies fail, from the moment nothing is queued here, see
		// each end at once: it may be a failure, whose next attempt
		// should go.
		return f.ends[0].Add(s.opts.PollMin), true
	case queued:
		if fails || f.inECS >= s.opts.inECSMax(region) {
			dry := f.dry
			if fails {
				dry = dry.Add(-min(s.opts.LookaheadTime/4, dry.Sub(f.now)/2))
			}
			limit = minTime(limit, dry)
		}
	}
	for _, q := range f.queue {
		// An urgent copy expected to start: look then. Once it is due, the
		// end that frees its slot is what to look for (above).
		if q.urgent && q.start.After(f.now) {
			limit = minTime(limit, q.start)
			break
		}
	}
	if !queued {
		return minTime(f.lastEndBy(limit).Add(max(s.opts.PollMin, s.opts.DetectLag/10)), limit), true
	}
	return limit, true
}

// lagLimit is the latest a poll may come and still see the first end
// within DetectLag, less an eighth for the forecast's error (and come
// within PollMax). Polls come at this limit while jobs are queued, so
// the p95 lag sits near it: a tenth left it at 13.8-15.2 minutes of 15 in
// the benchmark, an eighth at 13.6-14.2.
func (s *Scheduler) lagLimit(f forecast) time.Time {
	return minTime(f.ends[0].Add(s.opts.DetectLag-s.opts.DetectLag/8), f.now.Add(s.opts.PollMax))
}

// lastEndBy is the latest expected end not after limit (limit itself
// when none is).
func (f forecast) lastEndBy(limit time.Time) time.Time {
	if i := sort.Search(len(f.ends), func(i int) bool { return f.ends[i].After(limit) }); i > 0 {
		return f.ends[i-1]
	}
	return limit
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// schedulePoll makes the region's next poll come within d.
func (s *Scheduler) schedulePoll(region string, d time.Duration) {
	at := s.opts.Clock.Now().Add(d)
	s.mu.Lock()
	if cur, ok := s.nextPoll[region]; !ok || !cur.Before(at) {
		s.nextPoll[region] = at
	}
	s.mu.Unlock()
	s.queue.AddAfter(keyPoll+region, d)
}

// pollSoon plans the region's next poll again after a copy was accepted:
// the forecast now holds the new copy. A copy that starts at once (a slot
// was free) on a route with no finished copy yet is looked at within
// PollMin, to learn its time left from ECS rather than from the prior.
// While other copies admitted to the region are still being sent, the
// look waits for them: the last one accepted makes it, and one call sees
// them all. (Looking after each, a region's first copies, accepted
// milliseconds apart, took two to five polls at the start of the
// benchmark's fleet.) Should none of them be accepted (refused, or
// backing off), the look still comes within a tenth of LookaheadTime,
// the horizon over which admission trusts the forecast it corrects.
func (s *Scheduler) pollSoon(region string) {
	now := s.opts.Clock.Now()
	f := s.regionForecast(region, now)
	look := s.opts.PollMax
	for _, q := range f.queue {
		if !q.start.After(now) && q.j.CloudStatus == "" && !s.est.known(q.j.Route()) {
			look = s.opts.PollMin
			if f.sending() {
				look = max(s.opts.PollMin, s.opts.LookaheadTime/10)
			}
			break
		}
	}
	s.replan(region, look)
}

// sending reports whether a copy of the forecast is still being sent: a
// job SUBMITTING and not backing off (every such job of the region is in
// its queue).
func (f forecast) sending() bool {
	for _, q := range f.queue {
		if q.j.State == job.StateSubmitting && !q.j.NextAttemptTime.After(f.now) {
			return true
		}
	}
	return false
}

// observation is what one copy's status means for the next poll.
type observation struct {
	look time.Duration // look again within this (0: no need)
}

// observe applies what ECS says about one copy to its job. Each outcome
// has its own function: a cancel in progress, a copy ECS does not list, a
// copy waiting or running, a copy done, a copy failed.
func (s *Scheduler) observe(ctx context.Context, j *job.Job, im cloud.Image, found bool) (observation, error) {
	now := s.opts.Clock.Now()
	switch {
	case j.State == job.StateCancelling:
		return s.observeCancelling(ctx, j, im, found, now)
	case !found:
		return s.observeMissing(ctx, j, now)
	}
	switch im.Status {
	case cloud.StatusWaiting, cloud.StatusCreating:
		return observation{}, s.observeRunning(ctx, j, im, now)
	case cloud.StatusAvailable:
		return s.observeAvailable(ctx, j)
	default: // CreateFailed, UnAvailable
		return s.observeFailed(ctx, j, im)
	}
}

// observeCancelling follows a CANCELLING job's copy until it is gone.
func (s *Scheduler) observeCancelling(ctx context.Context, j *job.Job, im cloud.Image, found bool, now time.Time) (observation, error) {
	switch {
	case !found:
		// ECS lists a new copy with some delay: a copy never seen by a
		// poll and missing just after it was accepted is not gone yet.
		if grace := j.SubmitTime.Add(s.opts.VanishGrace); j.CloudStatus == "" && !s.cancelSent(j.ID) && now.Before(grace) {
			return observation{look: min(grace.Sub(now), s.opts.PollMax)}, nil
		}
		return observation{}, s.cancelled(ctx, j.ID, now, "")
	case im.Status == cloud.StatusAvailable || im.Status == cloud.StatusCreateFailed || im.Status == cloud.StatusUnAvailable:
		// The copy ended: the cancel turns into a delete (cancelCopy
		// reads the status from the job).
		if j.CloudStatus != im.Status {
			if err := s.recordCancellingStatus(ctx, j.ID, im, now); err != nil {
				return observation{}, err
			}
		}
		s.queue.Add(keyJob + j.ID)
	case j.CloudStatus != im.Status || j.ProgressPercent != im.ProgressPercent:
		if err := s.recordCancellingStatus(ctx, j.ID, im, time.Time{}); err != nil {
			return observation{}, err
		}
	}
	return observation{look: s.opts.PollMin}, nil
}

// recordCancellingStatus stores the copy's status and progress on a job
// still CANCELLING; a non-zero retryAt makes the cancel step due then.
func (s *Scheduler) recordCancellingStatus(ctx context.Context, id string, im cloud.Image, retryAt time.Time) error {
	_, err := s.update(ctx, id, func(j *job.Job) error {
		if j.State != job.StateCancelling {
			return errSkip
		}
		j.CloudStatus = im.Status
		j.ProgressPercent = im.ProgressPercent
		if !retryAt.IsZero() {
			j.NextAttemptTime = retryAt
		}
		return nil
	})
	return ignoreSkip(err)
}

// observeMissing handles a copy ECS does not list: not yet listed just
// after submit, or vanished.
func (s *Scheduler) observeMissing(ctx context.Context, j *job.Job, now time.Time) (observation, error) {
	// ECS lists a new copy with some delay: only a copy missing well
	// after it was accepted has vanished.
	if grace := j.SubmitTime.Add(s.opts.VanishGrace); now.Before(grace) {
		return observation{look: grace.Sub(now)}, nil
	}
	// The copy vanished (deleted by hand, or cancelled outside
	// replicatord): make it again, as a new attempt.
	return observation{}, s.recopy(ctx, j, &job.Error{Code: "CopyDisappeared", Message: "the copy " + j.DestinationImageID + " no longer exists in " + j.DestinationRegion})
}

// observeRunning records a copy that is Waiting or Creating: WAITING or
// COPYING, its progress and the time it has left (ECS's RemainTime, else
// from the observed rate), and when ECS said so.
func (s *Scheduler) observeRunning(ctx context.Context, j *job.Job, im cloud.Image, now time.Time) error {
	state := job.StateWaiting
	remaining := s.remainingOf(j, im, now)
	if im.Status == cloud.StatusCreating {
		state = job.StateCopying
		s.markStarted(j.ID, now, im.ProgressPercent, remaining, startedAfter(j))
	}
	if j.State == state && j.ProgressPercent == im.ProgressPercent && j.CloudStatus == im.Status && j.Remaining == remaining {
		return nil
	}
	if _, err := s.update(ctx, j.ID, func(j *job.Job) error {
		if j.State != job.StateWaiting && j.State != job.StateCopying {
			return errSkip
		}
		j.State = state
		j.CloudStatus = im.Status
		j.ProgressPercent = im.ProgressPercent
		j.Remaining = remaining
		j.ProgressTime = now
		return nil
	}); ignoreSkip(err) != nil {
		return err
	}
	if state == job.StateCopying {
		failpoint.Hit(failpoint.WhileCreating)
	}
	return nil
}

// observeAvailable finishes a copy that is Available: SUCCEEDED, or COPYING
// at 100% with the post-copy actions left to the job's step.
func (s *Scheduler) observeAvailable(ctx context.Context, j *job.Job) (observation, error) {
	if len(postCopyActions(j)) == 0 {
		return observation{}, s.succeeded(ctx, j.ID)
	}
	if _, err := s.update(ctx, j.ID, func(j *job.Job) error {
		if j.State != job.StateWaiting && j.State != job.StateCopying {
			return errSkip
		}
		j.State = job.StateCopying
		j.CloudStatus = cloud.StatusAvailable
		j.ProgressPercent = 100
		j.Remaining = 0
		return nil
	}); ignoreSkip(err) != nil {
		return observation{}, err
	}
	s.queue.Add(keyJob + j.ID)
	return observation{}, nil
}

// observeFailed handles a copy ECS reports CreateFailed or UnAvailable:
// delete it, then a new attempt (or FAILED).
func (s *Scheduler) observeFailed(ctx context.Context, j *job.Job, im cloud.Image) (observation, error) {
	// Clean up the failed copy (its snapshots are billed) before the
	// next attempt. A crash here is safe: the next poll no longer finds
	// the copy and recopies. An adopted copy is not proven ours: it is
	// left, and the next attempt makes a copy of our own.
	if !j.Adopted {
		err := s.mutate(ctx, cloud.ActionDeleteImage, j.ID, j.DestinationRegion, j.DestinationImageID, false, func(ctx context.Context) error {
			return s.cloud.DeleteImage(ctx, j.DestinationRegion, j.DestinationImageID)
		})
		if err != nil && cloud.ClassOf(err) != cloud.ClassNotFound {
			return observation{look: s.opts.PollMin}, nil // try the cleanup again soon
		}
	}
	if im.Status == cloud.StatusCreateFailed {
		s.est.observeOutcome(j.DestinationRegion, true)
	}
	return observation{}, s.recopy(ctx, j, &job.Error{Code: "CreateFailed", Message: "ECS reported the copy " + j.DestinationImageID + " as " + im.Status})
}

// recopy starts a new attempt of j, or fails it when attempts are used up.
func (s *Scheduler) recopy(ctx context.Context, j *job.Job, why *job.Error) error {
	now := s.opts.Clock.Now()
	_, err := s.update(ctx, j.ID, func(j *job.Job) error {
		if j.State != job.StateWaiting && j.State != job.StateCopying || j.CancelRequested {
			return errSkip // cancelled by another writer: the job's step ends it
		}
		if j.Attempts-j.AttemptBase >= int32(s.opts.MaxAttempts) {
			j.State = job.StateFailed
			j.Error = why
			j.FinishTime = now
			return nil
		}
		attempts := j.Attempts
		resetForNewAttempt(j)
		j.Attempts = attempts
		why.Retryable = true
		j.Error = why
		return nil
	})
	return ignoreSkip(err)
}

// remainingOf is how long a Waiting or Creating copy has left. ECS's
// RemainTime is whole seconds, rounded up: the truth lies in the second
// below it. Every poll's reading is such a second, and the copy's end lies
// in all of them at once, so their intersection (endWin) narrows with
// each look: a poll that comes at the middle of it and finds the copy
// still running halves it. Within it the copy's own progress rate (from
// two looks at it) places the end better; without RemainTime the rate is
// all there is. The second matters only when time is scaled, as in the
// benchmark, where one second stands for many minutes; against ECS,
// RemainTime rules.
func (s *Scheduler) remainingOf(j *job.Job, im cloud.Image, now time.Time) time.Duration {
	r := im.RemainTime
	var est time.Duration
	ok := false
	if im.Status == cloud.StatusCreating {
		est, ok = s.remainingFromProgress(j, im.ProgressPercent, now)
		if !ok && im.ProgressPercent > 0 && im.ProgressPercent < 100 {
			// Progress is whole percents of the route's learned copy time.
			est = time.Duration(float64(s.est.duration(j)) * (100 - float64(im.ProgressPercent) - 0.5) / 100)
			ok = true
		}
	}
	if r <= 0 {
		if ok {
			return est
		}
		return r
	}
	if im.Status == cloud.StatusCreating && j.CloudStatus != cloud.StatusCreating && s.est.known(j.Route()) {
		// First seen under way: it started since the last look (or since
		// ECS accepted it), so it ends a copy time after that.
		if d, since := s.est.duration(j), startedAfter(j); !since.IsZero() && since.Before(now) {
			s.narrowEnd(j.ID, since.Add(d-d/10), now.Add(d+d/10)) // ±10 %: d is learned
		}
	}
	w := s.narrowEnd(j.ID, now.Add(r-time.Second), now.Add(r))
	end := w.lo.Add(w.hi.Sub(w.lo) / 2)
	if ok {
		end = minTime(maxTime(now.Add(est), w.lo), w.hi)
	}
	return max(end.Sub(now), time.Millisecond)
}

// endWindow is the span (lo, hi] a copy's end lies in, as far as the
// RemainTime readings tell. ECS plans a Waiting copy's end too (from the
// slot it will take), so the readings of both states narrow one window.
type endWindow struct{ lo, hi time.Time }

// narrowEnd intersects a copy's end window with one more reading (lo, hi]
// and returns it. A reading that contradicts the window starts it afresh:
// ECS revised its plan (a copy ahead ended early, or the estimate moved).
func (s *Scheduler) narrowEnd(id string, lo, hi time.Time) endWindow {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.endWin[id]
	if ok && lo.Before(w.hi) && w.lo.Before(hi) {
		w.lo, w.hi = maxTime(w.lo, lo), minTime(w.hi, hi)
	} else {
		w = endWindow{lo, hi}
	}
	s.endWin[id] = w
	return w
}

// remainingFromProgress extrapolates the copy's progress since the first
// time a poll saw it under way: percents are whole, so it waits for a few
// of them to pass.
func (s *Scheduler) remainingFromProgress(j *job.Job, p int32, now time.Time) (time.Duration, bool) {
	id := j.ID
	s.mu.Lock()
	first, ok := s.firstSeen[id]
	if !ok && p > 0 && p < 100 {
		s.firstSeen[id] = progressSample{now, p}
	}
	s.mu.Unlock()
	if !ok || p-first.p < 5 || p >= 100 || !now.After(first.t) {
		return 0, false
	}
	perSec := float64(p-first.p) / now.Sub(first.t).Seconds()
	if p-first.p >= 20 {
		// Enough to learn the route's copy time from.
		s.est.observeProgress(j.Route(), j.SizeGiB, perSec)
	}
	return time.Duration((100 - float64(p) - 0.5) / perSec * float64(time.Second)), true
}

// progressSample is one look at a copy's progress.
type progressSample struct {
	t time.Time
	p int32
}

// markStarted records when a copy started, the first time a poll sees it
// Creating. The poll may come late: progress p with time r left means the
// copy has run r*p/(100-p) already, but not since before after (the last
// look that saw it Waiting, or its submit): with time scaled, r is coarse.
func (s *Scheduler) markStarted(id string, now time.Time, progress int32, remaining time.Duration, after time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.started[id]; ok {
		return
	}
	if progress > 0 && progress < 100 && remaining > 0 {
		now = now.Add(-time.Duration(float64(remaining) * float64(progress) / float64(100-progress)))
		if now.Before(after) {
			now = after
		}
	}
	s.started[id] = now
}

// startedAfter is the earliest a copy not yet seen Creating can have
// started: the last look that saw it Waiting, else when ECS accepted it.
func startedAfter(j *job.Job) time.Time {
	if j.CloudStatus == cloud.StatusWaiting && j.ProgressTime.After(j.SubmitTime) {
		return j.ProgressTime
	}
	return j.SubmitTime
}

func (s *Scheduler) copyStarted(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.started[id]
	return t, ok
}

func (s *Scheduler) isRecovering(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovering[id]
}

func (s *Scheduler) doneRecovering(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recovering, id)
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
