package scheduler

import (
	"context"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/failpoint"
	"github.com/replicatord/replicatord/internal/job"
)

// poll refreshes every in-flight copy of a region with one DescribeImages
// call per 100 copies, then schedules the next poll.
//
// When is the next poll? A poll is worth its call when something has
// ended. With jobs still queued here, ECS keeps the region's slots busy
// until the copies it holds Waiting have all started, so the poll aims at
// the end that would start the last but one of them (the w-1-th expected
// end; the first when fewer are waiting) and refills the look-ahead then.
// With nothing queued, it aims at the first end, so that a finished job is
// seen promptly. Expected ends come from ECS's RemainTime (or the observed
// progress rate); PollMin and PollMax bound the wait.
func (s *Scheduler) poll(ctx context.Context, region string) error {
	jobs, queued := s.pollTargets(region)
	if len(jobs) == 0 {
		return nil
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID < jobs[b].ID })

	r := pollResult{look: s.opts.PollMax} // the latest the next poll may come
	for start := 0; start < len(jobs); start += cloud.MaxIDsPerDescribe {
		batch := jobs[start:min(start+cloud.MaxIDsPerDescribe, len(jobs))]
		listed, err := s.pollBatch(ctx, region, batch, &r)
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
	look := r.look
	if len(r.ends) > 0 {
		ends := r.ends
		sort.Slice(ends, func(a, b int) bool { return ends[a] < ends[b] })
		k := 0
		if queued > 0 && r.waiting > 1 {
			k = min(r.waiting-2, len(ends)-1)
		}
		// Just after the expected end, to need one look for it.
		look = min(look, ends[k]+s.opts.PollMin/2)
	}
	s.schedulePoll(region, max(look, s.opts.PollMin))
	return nil
}

// pollTargets returns the region's copies to poll (its jobs with a copy in
// ECS) and how many of its jobs are QUEUED, and marks a poll as pending
// (or none, when there is nothing to poll).
func (s *Scheduler) pollTargets(region string) (jobs []*job.Job, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// While this poll runs, copies accepted meanwhile (slots it frees are
	// refilled at once) need no poll of their own: the one this poll
	// schedules at its end sees them.
	s.nextPoll[region] = s.opts.Clock.Now().Add(s.opts.PollMax)
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
	if len(jobs) == 0 {
		delete(s.nextPoll, region)
	}
	return jobs, queued
}

// pollResult gathers what the batches of one poll say about the next.
type pollResult struct {
	look    time.Duration   // look again within this
	ends    []time.Duration // expected ends of running copies
	waiting int             // copies ECS holds Waiting
}

// pollBatch describes one batch of at most 100 copies and observes each.
// listed is false when DescribeImages failed (nothing was observed); err
// is a store failure.
func (s *Scheduler) pollBatch(ctx context.Context, region string, batch []*job.Job, r *pollResult) (listed bool, err error) {
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
		if im.Status == cloud.StatusWaiting {
			r.waiting++
		}
	}
	for _, j := range batch {
		im, ok := byID[j.DestinationImageID]
		o, err := s.observe(withJob(ctx, j), j, im, ok)
		if err != nil {
			return true, err
		}
		if o.look > 0 {
			r.look = min(r.look, o.look)
		}
		if o.end > 0 {
			r.ends = append(r.ends, o.end)
		}
	}
	return true, nil
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

// pollSoon makes sure a poll of the region is pending: a new copy is seen
// by the next poll, and only a region with none pending needs one soon (to
// learn the copy's RemainTime).
func (s *Scheduler) pollSoon(region string) {
	s.mu.Lock()
	_, pending := s.nextPoll[region]
	s.mu.Unlock()
	if !pending {
		s.schedulePoll(region, s.opts.PollMin)
	}
}

// observation is what one copy's status means for the next poll.
type observation struct {
	look time.Duration // look again within this (0: no need)
	end  time.Duration // the copy is expected to end in this (0: unknown)
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
		return s.observeRunning(ctx, j, im, now)
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
// COPYING, its progress and the time it has left.
func (s *Scheduler) observeRunning(ctx context.Context, j *job.Job, im cloud.Image, now time.Time) (observation, error) {
	state := job.StateWaiting
	if im.Status == cloud.StatusCreating {
		state = job.StateCopying
		s.markStarted(j.ID, now, im.ProgressPercent, im.RemainTime)
	}
	remaining := im.RemainTime
	if remaining <= 0 && im.Status == cloud.StatusCreating {
		remaining = s.remainingFromRate(j, im, now)
	}
	if j.State != state || j.ProgressPercent != im.ProgressPercent || j.CloudStatus != im.Status || j.Remaining != remaining {
		if _, err := s.update(ctx, j.ID, func(j *job.Job) error {
			if j.State != job.StateWaiting && j.State != job.StateCopying {
				return errSkip
			}
			j.State = state
			j.CloudStatus = im.Status
			j.ProgressPercent = im.ProgressPercent
			j.Remaining = remaining
			return nil
		}); ignoreSkip(err) != nil {
			return observation{}, err
		}
		if state == job.StateCopying {
			failpoint.Hit(failpoint.WhileCreating)
		}
	}
	if state == job.StateCopying && remaining > 0 {
		return observation{end: remaining}, nil
	}
	return observation{}, nil
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

// remainingFromRate estimates the time left from the progress made since
// ECS started the copy.
func (s *Scheduler) remainingFromRate(j *job.Job, im cloud.Image, now time.Time) time.Duration {
	start, ok := s.copyStarted(j.ID)
	if !ok || im.ProgressPercent <= 0 || im.ProgressPercent >= 100 {
		return 0
	}
	elapsed := now.Sub(start)
	return time.Duration(float64(elapsed) * float64(100-im.ProgressPercent) / float64(im.ProgressPercent))
}

// markStarted records when a copy started, the first time a poll sees it
// Creating. The poll may come late: progress p with time r left means the
// copy has run r*p/(100-p) already.
func (s *Scheduler) markStarted(id string, now time.Time, progress int32, remaining time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.started[id]; ok {
		return
	}
	if progress > 0 && progress < 100 && remaining > 0 {
		now = now.Add(-time.Duration(float64(remaining) * float64(progress) / float64(100-progress)))
	}
	s.started[id] = now
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
