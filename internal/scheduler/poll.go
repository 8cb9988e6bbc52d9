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

// poll refreshes every in-flight copy of a region: one DescribeImages call
// per 100 copies, then the next poll when the earliest copy should finish.
func (s *Scheduler) poll(ctx context.Context, region string) error {
	s.mu.Lock()
	var jobs []*job.Job
	for _, j := range s.live {
		if j.DestinationRegion == region && j.DestinationImageID != "" &&
			(j.State == job.StateWaiting || j.State == job.StateCopying || j.State == job.StateCancelling) {
			jobs = append(jobs, j)
		}
	}
	s.mu.Unlock()
	if len(jobs) == 0 {
		return nil
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID < jobs[b].ID })

	next := s.opts.PollMax
	for start := 0; start < len(jobs); start += cloud.MaxIDsPerDescribe {
		batch := jobs[start:min(start+cloud.MaxIDsPerDescribe, len(jobs))]
		ids := make([]string, len(batch))
		for i, j := range batch {
			ids[i] = j.DestinationImageID
		}
		var imgs []cloud.Image
		err := s.call(ctx, "DescribeImages", func(ctx context.Context) error {
			var err error
			imgs, err = s.cloud.DescribeImages(ctx, cloud.ImageQuery{Region: region, IDs: ids, Statuses: cloud.AllStatuses})
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Transient or not, the copies are still there: look again soon.
			s.queue.AddAfter(keyPoll+region, backoff(s.opts.PollMin, s.opts.PollMax, 2))
			return nil
		}
		byID := make(map[string]cloud.Image, len(imgs))
		for _, im := range imgs {
			byID[im.ID] = im
		}
		for _, j := range batch {
			im, ok := byID[j.DestinationImageID]
			d, err := s.observe(ctx, j, im, ok)
			if err != nil {
				return err
			}
			if d > 0 && d < next {
				next = d
			}
		}
	}
	if next < s.opts.PollMin {
		next = s.opts.PollMin
	}
	s.queue.AddAfter(keyPoll+region, next)
	return nil
}

// observe applies what ECS says about one copy to its job and returns when
// the copy should next be looked at (0: no opinion).
func (s *Scheduler) observe(ctx context.Context, j *job.Job, im cloud.Image, found bool) (time.Duration, error) {
	now := s.opts.Clock.Now()
	if j.State == job.StateCancelling {
		switch {
		case !found:
			return 0, s.cancelled(ctx, j.ID, now)
		case im.Status == cloud.StatusAvailable || im.Status == cloud.StatusCreateFailed || im.Status == cloud.StatusUnAvailable:
			s.queue.Add(keyJob + j.ID) // cancel turns into delete
		}
		return s.opts.PollMin, nil
	}
	if !found {
		// ECS lists a new copy with some delay: only a copy missing well
		// after it was accepted has vanished.
		if grace := j.SubmitTime.Add(s.opts.VanishGrace); now.Before(grace) {
			return grace.Sub(now), nil
		}
		// The copy vanished (deleted by hand, or cancelled outside
		// replicatord): make it again, as a new attempt.
		return 0, s.recopy(ctx, j, &job.Error{Code: "CopyDisappeared", Message: "the copy " + j.DestinationImageID + " no longer exists in " + j.DestinationRegion})
	}
	switch im.Status {
	case cloud.StatusWaiting, cloud.StatusCreating:
		state := job.StateWaiting
		if im.Status == cloud.StatusCreating {
			state = job.StateCopying
			s.markStarted(j.ID, now)
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
				return 0, err
			}
			if state == job.StateCopying {
				failpoint.Hit(failpoint.WhileCreating)
			}
		}
		if state == job.StateCopying && remaining > 0 {
			// Poll right after the expected end, to need one look per copy.
			return remaining + s.opts.PollMin/2, nil
		}
		return 0, nil
	case cloud.StatusAvailable:
		if len(postCopyActions(j)) == 0 {
			return 0, s.succeeded(ctx, j.ID)
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
			return 0, err
		}
		s.queue.Add(keyJob + j.ID)
		return 0, nil
	default: // CreateFailed, UnAvailable
		// Clean up the failed copy (its snapshots are billed) before the
		// next attempt. A crash here is safe: the next poll no longer finds
		// the copy and recopies.
		err := s.call(ctx, "DeleteImage", func(ctx context.Context) error {
			return s.cloud.DeleteImage(ctx, j.DestinationRegion, j.DestinationImageID)
		})
		if err != nil && cloud.ClassOf(err) != cloud.ClassNotFound {
			return s.opts.PollMin, nil // try the cleanup again at the next poll
		}
		return 0, s.recopy(ctx, j, &job.Error{Code: "CreateFailed", Message: "ECS reported the copy " + j.DestinationImageID + " as " + im.Status})
	}
}

// recopy starts a new attempt of j, or fails it when attempts are used up.
func (s *Scheduler) recopy(ctx context.Context, j *job.Job, why *job.Error) error {
	now := s.opts.Clock.Now()
	_, err := s.update(ctx, j.ID, func(j *job.Job) error {
		if j.State != job.StateWaiting && j.State != job.StateCopying {
			return errSkip
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

func (s *Scheduler) markStarted(id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.started[id]; !ok {
		s.started[id] = now
	}
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
