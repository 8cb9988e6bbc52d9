package scheduler

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/failpoint"
	"github.com/replicatord/replicatord/internal/job"
)

// step advances one job: submit, cancel, or finish its post-copy actions.
func (s *Scheduler) step(ctx context.Context, id string) error {
	j := s.get(id)
	if j == nil {
		return nil // terminal, or never ours
	}
	switch j.State {
	case job.StateSubmitting:
		return s.submit(ctx, j)
	case job.StateWaiting, job.StateCopying:
		if j.CancelRequested {
			j, err := s.update(ctx, id, func(j *job.Job) error {
				if j.State != job.StateWaiting && j.State != job.StateCopying {
					return errSkip
				}
				j.State = job.StateCancelling
				return nil
			})
			if err != nil {
				return ignoreSkip(err)
			}
			return s.cancelCopy(ctx, j)
		}
		if j.CloudStatus == cloud.StatusAvailable {
			return s.finish(ctx, j)
		}
	case job.StateCancelling:
		return s.cancelCopy(ctx, j)
	}
	return nil
}

func ignoreSkip(err error) error {
	if errors.Is(err, errSkip) {
		return nil
	}
	return err
}

// lineageTags are put on every copy so that replicatord can find the copies
// it made, even without its state file.
func lineageTags(j *job.Job) map[string]string {
	t := make(map[string]string, len(j.Tags)+5)
	for k, v := range j.Tags {
		t[k] = v
	}
	t[job.TagJobID] = j.ID
	t[job.TagSourceImage] = j.SourceImageID
	t[job.TagSourceRegion] = j.SourceRegion
	t[job.TagAttempt] = strconv.Itoa(int(j.Attempts))
	if j.Policy != "" {
		t[job.TagPolicy] = j.Policy
	}
	return t
}

// findCopy looks for the copy of j's current attempt in ECS by its lineage
// tags; "" when there is none.
func (s *Scheduler) findCopy(ctx context.Context, j *job.Job) (string, error) {
	var imgs []cloud.Image
	err := s.call(ctx, cloud.ActionDescribeImages, func(ctx context.Context) error {
		var err error
		imgs, err = s.cloud.DescribeImages(ctx, cloud.ImageQuery{
			Region:   j.DestinationRegion,
			Statuses: cloud.AllStatuses,
			Tags:     map[string]string{job.TagJobID: j.ID, job.TagAttempt: strconv.Itoa(int(j.Attempts))},
		})
		return err
	})
	if err != nil {
		return "", err
	}
	for _, im := range imgs {
		if im.Status != cloud.StatusCreateFailed {
			return im.ID, nil
		}
	}
	return "", nil
}

// submit sends CopyImage for a job whose intent (state SUBMITTING with its
// ClientToken) is already durable.
func (s *Scheduler) submit(ctx context.Context, j *job.Job) error {
	now := s.opts.Clock.Now()
	// After a restart, or when a cancel arrived while submitting, ECS may
	// already hold the copy: look it up by lineage before acting.
	if j.CancelRequested || s.isRecovering(j.ID) {
		found, err := s.findCopy(ctx, j)
		if err != nil {
			return s.retryLater(ctx, j, err)
		}
		s.doneRecovering(j.ID)
		if found != "" {
			return s.accepted(ctx, j.ID, found)
		}
		if j.CancelRequested {
			_, err := s.update(ctx, j.ID, func(j *job.Job) error {
				if j.State != job.StateSubmitting {
					return errSkip
				}
				j.State = job.StateCancelled
				j.FinishTime = now
				return nil
			})
			return ignoreSkip(err)
		}
	}
	failpoint.Hit(failpoint.BeforeCopyImage)
	var imageID string
	err := s.call(ctx, cloud.ActionCopyImage, func(ctx context.Context) error {
		var err error
		imageID, err = s.cloud.CopyImage(ctx, cloud.CopyRequest{
			SourceRegion:      j.SourceRegion,
			SourceImageID:     j.SourceImageID,
			DestinationRegion: j.DestinationRegion,
			Name:              j.DestinationImageName,
			Description:       j.DestinationDescription,
			Encrypted:         j.Encrypted,
			KMSKeyID:          j.KMSKeyID,
			Tags:              lineageTags(j),
			ClientToken:       j.ClientToken,
		})
		return err
	})
	if err == nil {
		failpoint.Hit(failpoint.AfterCopyImage)
		return s.accepted(ctx, j.ID, imageID)
	}
	if ctx.Err() != nil {
		return nil // shutting down; the job resumes from SUBMITTING
	}
	switch cloud.ClassOf(err) {
	case cloud.ClassThrottled: // refused at the door: ECS made nothing
		return s.retryLater(ctx, j, err)
	case cloud.ClassRetryable:
		// A timeout or 5xx may hide a copy ECS made: the retry looks it up
		// by lineage first, in case ECS does not honour the ClientToken.
		s.mu.Lock()
		s.recovering[j.ID] = true
		s.mu.Unlock()
		return s.retryLater(ctx, j, err)
	case cloud.ClassQuota:
		wait := s.opts.QuotaWait
		if cloud.CodeOf(err) == cloud.CodeImageCopyConflict {
			s.mu.Lock()
			if !s.conflict {
				s.log.Warn("ECS refuses concurrent copies of one source image; copying each source image one region at a time")
			}
			s.conflict = true
			s.mu.Unlock()
			wait = 0
		}
		_, uerr := s.update(ctx, j.ID, func(j *job.Job) error {
			if j.State != job.StateSubmitting {
				return errSkip
			}
			j.State = job.StateQueued
			j.Attempts-- // not an attempt: ECS made nothing
			j.ClientToken = ""
			j.Error = jobError(err, true)
			j.NextAttemptTime = now.Add(wait)
			return nil
		})
		return ignoreSkip(uerr)
	default:
		return s.fail(ctx, j.ID, err)
	}
}

// accepted records that ECS holds the copy imageID for job id.
func (s *Scheduler) accepted(ctx context.Context, id, imageID string) error {
	j, err := s.update(ctx, id, func(j *job.Job) error {
		if j.State != job.StateSubmitting {
			return errSkip
		}
		j.DestinationImageID = imageID
		j.State = job.StateWaiting
		j.CloudStatus = "" // until a poll says what ECS makes of it
		j.Error = nil
		j.Retries = 0
		j.NextAttemptTime = time.Time{}
		if j.CancelRequested {
			j.State = job.StateCancelling
		}
		return nil
	})
	if err != nil {
		return ignoreSkip(err)
	}
	if j.State == job.StateCancelling {
		return s.cancelCopy(ctx, j)
	}
	s.pollSoon(j.DestinationRegion)
	return nil
}

// retryLater backs a job off after a transient failure, or fails it when
// it has failed too often.
func (s *Scheduler) retryLater(ctx context.Context, j *job.Job, cause error) error {
	if ctx.Err() != nil {
		return nil
	}
	// Throttling is flow control, not failure: it slows the job (and the
	// action, see call) but never uses up its retries.
	throttled := cloud.ClassOf(cause) == cloud.ClassThrottled
	if !throttled && j.Retries+1 > int32(s.opts.MaxRetries) {
		return s.fail(ctx, j.ID, cause)
	}
	d := backoff(s.opts.RetryBase, s.opts.RetryMax, int(min(j.Retries, 16)))
	now := s.opts.Clock.Now()
	state := j.State
	nj, err := s.update(ctx, j.ID, func(j *job.Job) error {
		if j.State != state {
			return errSkip
		}
		if !throttled || j.Retries < int32(s.opts.MaxRetries) {
			j.Retries++ // grows the backoff; capped for throttles
		}
		j.Error = jobError(cause, true)
		j.NextAttemptTime = now.Add(d)
		return nil
	})
	if err != nil {
		return ignoreSkip(err)
	}
	s.queue.AddAfter(keyJob+nj.ID, d)
	return nil
}

// backoff is exponential in n, capped, with ±20% jitter from the id-free
// global source (jitter only spreads retries; it needs no determinism).
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return jitter(d)
}

func (s *Scheduler) fail(ctx context.Context, id string, cause error) error {
	now := s.opts.Clock.Now()
	_, err := s.update(ctx, id, func(j *job.Job) error {
		if j.State.Terminal() {
			return errSkip
		}
		j.State = job.StateFailed
		j.Error = jobError(cause, false)
		j.FinishTime = now
		j.NextAttemptTime = time.Time{}
		return nil
	})
	return ignoreSkip(err)
}

func jobError(err error, retryable bool) *job.Error {
	var ce *cloud.Error
	if errors.As(err, &ce) {
		return &job.Error{Code: ce.Code, Message: ce.Message, RequestID: ce.RequestID, Retryable: retryable}
	}
	code := "Internal"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = "Timeout"
	case errors.Is(err, errdefs.ErrUnavailable):
		code = "Unavailable"
	}
	return &job.Error{Code: code, Message: err.Error(), Retryable: retryable}
}

// cancelCopy sends CancelCopyImage for a CANCELLING job and settles it.
func (s *Scheduler) cancelCopy(ctx context.Context, j *job.Job) error {
	now := s.opts.Clock.Now()
	if j.DestinationImageID == "" {
		return s.cancelled(ctx, j.ID, now)
	}
	failpoint.Hit(failpoint.BeforeCancelCopyImage)
	err := s.call(ctx, cloud.ActionCancelCopyImage, func(ctx context.Context) error {
		return s.cloud.CancelCopyImage(ctx, j.DestinationRegion, j.DestinationImageID)
	})
	failpoint.Hit(failpoint.AfterCancelCopyImage)
	if err == nil {
		// ECS removes the copy; a poll soon confirms it is gone.
		s.schedulePoll(j.DestinationRegion, s.opts.PollMin)
		return nil
	}
	if ctx.Err() != nil {
		return nil
	}
	switch code := cloud.CodeOf(err); {
	case cloud.ClassOf(err) == cloud.ClassNotFound:
		return s.cancelled(ctx, j.ID, now)
	case code == cloud.CodeIncorrectStatus || code == cloud.CodeNotFromCopy:
		// The copy finished (or failed) before the cancel reached it. A
		// cancelled job leaves no copy behind, so delete it.
		derr := s.call(ctx, cloud.ActionDeleteImage, func(ctx context.Context) error {
			return s.cloud.DeleteImage(ctx, j.DestinationRegion, j.DestinationImageID)
		})
		if derr == nil || cloud.ClassOf(derr) == cloud.ClassNotFound {
			return s.cancelled(ctx, j.ID, now)
		}
		return s.retryLater(ctx, j, derr)
	case code == cloud.CodeCancelNotSupported:
		// Keep following the copy: once it finishes it is deleted above.
		return s.retryLater(ctx, j, err)
	}
	switch cloud.ClassOf(err) {
	case cloud.ClassThrottled, cloud.ClassRetryable, cloud.ClassQuota:
		return s.retryLater(ctx, j, err)
	}
	return s.fail(ctx, j.ID, err)
}

func (s *Scheduler) cancelled(ctx context.Context, id string, now time.Time) error {
	_, err := s.update(ctx, id, func(j *job.Job) error {
		if j.State.Terminal() {
			return errSkip
		}
		j.State = job.StateCancelled
		j.FinishTime = now
		j.NextAttemptTime = time.Time{}
		if j.CloudStatus != cloud.StatusAvailable {
			j.CloudStatus = ""
		}
		return nil
	})
	return ignoreSkip(err)
}

// postCopyActions lists the actions a job needs once its copy is Available.
func postCopyActions(j *job.Job) []string {
	var a []string
	if j.ImageFamily != "" {
		a = append(a, "image_family")
	}
	if len(j.ShareAccounts) > 0 {
		a = append(a, "share")
	}
	return a
}

// finish applies post-copy actions to an Available copy, then marks the
// job SUCCEEDED.
func (s *Scheduler) finish(ctx context.Context, j *job.Job) error {
	done := map[string]bool{}
	for _, a := range j.PostCopy {
		if a.Done {
			done[a.Name] = true
		}
	}
	for _, name := range postCopyActions(j) {
		if done[name] {
			continue
		}
		var err error
		switch name {
		case "image_family":
			err = s.call(ctx, cloud.ActionModifyImageAttribute, func(ctx context.Context) error {
				return s.cloud.SetImageFamily(ctx, j.DestinationRegion, j.DestinationImageID, j.ImageFamily)
			})
		case "share":
			err = s.call(ctx, cloud.ActionModifyImageSharePermission, func(ctx context.Context) error {
				return s.cloud.ShareImage(ctx, j.DestinationRegion, j.DestinationImageID, j.ShareAccounts)
			})
		}
		if ctx.Err() != nil {
			return nil
		}
		nj, uerr := s.update(ctx, j.ID, func(j *job.Job) error {
			if j.State != job.StateCopying && j.State != job.StateWaiting {
				return errSkip
			}
			setAction(j, name, err)
			return nil
		})
		if uerr != nil {
			return ignoreSkip(uerr)
		}
		if err != nil {
			if cloud.ClassOf(err) == cloud.ClassPermanent || cloud.ClassOf(err) == cloud.ClassNotFound {
				return s.fail(ctx, j.ID, err)
			}
			return s.retryLater(ctx, nj, err)
		}
		j = nj
	}
	return s.succeeded(ctx, j.ID)
}

func setAction(j *job.Job, name string, err error) {
	for i := range j.PostCopy {
		if j.PostCopy[i].Name == name {
			j.PostCopy[i].Done = err == nil
			j.PostCopy[i].Error = errString(err)
			return
		}
	}
	j.PostCopy = append(j.PostCopy, job.Action{Name: name, Done: err == nil, Error: errString(err)})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *Scheduler) succeeded(ctx context.Context, id string) error {
	now := s.opts.Clock.Now()
	// Read before the update: track forgets the start of a terminal job.
	start, started := s.copyStarted(id)
	j, err := s.update(ctx, id, func(j *job.Job) error {
		if j.State != job.StateCopying && j.State != job.StateWaiting {
			return errSkip
		}
		j.State = job.StateSucceeded
		j.CloudStatus = cloud.StatusAvailable
		j.ProgressPercent = 100
		j.Remaining = 0
		j.Error = nil
		j.FinishTime = now
		j.NextAttemptTime = time.Time{}
		return nil
	})
	if err != nil {
		return ignoreSkip(err)
	}
	if started {
		d := now.Sub(start)
		s.est.observe(j.Route(), j.SizeGiB, d)
		if s.opts.Observer != nil {
			s.opts.Observer.CopyFinished(j.Route(), d)
		}
	}
	return nil
}
