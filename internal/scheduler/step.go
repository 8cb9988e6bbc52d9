package scheduler

import (
	"context"
	"errors"
	"strconv"
	"strings"
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
	ctx = withJob(ctx, j)
	switch j.State {
	case job.StateSubmitting:
		if d := j.NextAttemptTime.Sub(s.opts.Clock.Now()); d > 0 && !j.CancelRequested {
			// Woken early (a duplicate kick, an event): keep the backoff.
			s.queue.AddAfter(keyJob+id, d)
			return nil
		}
		return s.submit(ctx, j)
	case job.StateWaiting, job.StateCopying:
		if j.CancelRequested {
			j, err := s.update(ctx, id, func(j *job.Job) error {
				if j.State != job.StateWaiting && j.State != job.StateCopying {
					return errSkip
				}
				j.State = job.StateCancelling
				j.NextAttemptTime = time.Time{} // a post-copy retry's wait is not the cancel's
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
func lineageTags(j *job.Job, owner string) map[string]string {
	t := make(map[string]string, len(j.Tags)+5)
	for k, v := range j.Tags {
		t[k] = v
	}
	t[job.TagJobID] = j.ID
	t[job.TagSourceImage] = j.SourceImageID
	t[job.TagSourceRegion] = j.SourceRegion
	t[job.TagAttempt] = strconv.Itoa(int(j.Attempts))
	t[job.TagOwner] = owner
	if j.Policy != "" {
		t[job.TagPolicy] = j.Policy
	}
	return t
}

// findCopy looks for the copy of j in ECS by its lineage tags: its own
// job id, an attempt of this job (the current one preferred: a retry also
// finds what an earlier attempt left), and this installation's owner (or
// none, for copies made before the owner tag). "" when there is none.
// What it finds is recorded as the job's copy: the proof of ownership of
// crash recovery. A live copy is preferred to a CreateFailed one, but a
// CreateFailed one is found too: it is still an image in ECS, and once it
// is the job's copy the poll deletes it (and recopies) or a cancel does.
func (s *Scheduler) findCopy(ctx context.Context, j *job.Job) (string, error) {
	var imgs []cloud.Image
	err := s.call(ctx, cloud.ActionDescribeImages, func(ctx context.Context) error {
		var err error
		imgs, err = s.cloud.DescribeImages(ctx, cloud.ImageQuery{
			Region:   j.DestinationRegion,
			Statuses: cloud.AllStatuses,
			Tags:     map[string]string{job.TagJobID: j.ID},
		})
		return err
	})
	if err != nil {
		return "", err
	}
	best, bestAttempt, bestLive := "", 0, false
	for _, im := range imgs {
		if im.Tags[job.TagJobID] != j.ID {
			continue
		}
		if o, ok := im.Tags[job.TagOwner]; ok && o != s.opts.Owner {
			continue
		}
		if im.Tags[job.TagSourceImage] != j.SourceImageID || im.Tags[job.TagSourceRegion] != j.SourceRegion {
			continue
		}
		a, err := strconv.Atoi(im.Tags[job.TagAttempt])
		if err != nil || a < 1 || a > int(j.Attempts) {
			continue
		}
		// A live copy beats a failed one; then the later attempt wins.
		live := im.Status != cloud.StatusCreateFailed
		if live && !bestLive || live == bestLive && a > bestAttempt {
			best, bestAttempt, bestLive = im.ID, a, live
		}
	}
	return best, nil
}

// submit sends CopyImage for a job whose intent (state SUBMITTING with its
// ClientToken) is already durable. After a restart, or when a cancel
// arrived while submitting, ECS may already hold the copy: lookupBeforeSubmit
// looks it up by lineage before acting. submitRefused handles a refusal.
func (s *Scheduler) submit(ctx context.Context, j *job.Job) error {
	now := s.opts.Clock.Now()
	if j.CancelRequested || s.isRecovering(j.ID) {
		if done, err := s.lookupBeforeSubmit(ctx, j, now); done {
			return err
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
			Tags:              lineageTags(j, s.opts.Owner),
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
	return s.submitRefused(ctx, j, err, now)
}

// lookupBeforeSubmit looks for a copy of j that ECS may already hold
// (found: the job has it; none: a cancel ends it, used-up retries fail
// it). done is false when CopyImage is still to be sent.
func (s *Scheduler) lookupBeforeSubmit(ctx context.Context, j *job.Job, now time.Time) (done bool, err error) {
	found, err := s.findCopy(ctx, j)
	if err != nil {
		return true, s.retryLater(ctx, j, err)
	}
	if found != "" {
		s.doneRecovering(j.ID)
		return true, s.accepted(ctx, j.ID, found)
	}
	// ECS lists a new copy with some delay: after an ambiguous
	// CopyImage, "none found" means none only after VanishGrace.
	if at := s.ambiguousSince(j.ID); j.CancelRequested && !at.IsZero() && now.Before(at.Add(s.opts.VanishGrace)) {
		d := min(at.Add(s.opts.VanishGrace).Sub(now), s.opts.PollMax)
		s.queue.AddAfter(keyJob+j.ID, d)
		return true, nil
	}
	s.doneRecovering(j.ID)
	if j.Error != nil && j.Retries >= int32(s.opts.MaxRetries) && !j.CancelRequested {
		// The retries are used up and no copy hides in ECS: fail now.
		return true, s.failWith(ctx, j.ID, &job.Error{Code: j.Error.Code, Message: j.Error.Message, RequestID: j.Error.RequestID})
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
		return true, ignoreSkip(err)
	}
	return false, nil
}

// submitRefused handles a CopyImage that failed: retry (throttled, or
// ambiguous and then looked up first), back to QUEUED (quota), or FAILED.
// now is when the step began.
func (s *Scheduler) submitRefused(ctx context.Context, j *job.Job, err error, now time.Time) error {
	switch cloud.ClassOf(err) {
	case cloud.ClassThrottled: // refused at the door: ECS made nothing
		return s.retryLater(ctx, j, err)
	case cloud.ClassRetryable:
		// A timeout or 5xx may hide a copy ECS made: the retry looks it up
		// by lineage first, in case ECS does not honour the ClientToken.
		s.mu.Lock()
		s.recovering[j.ID] = true
		if noAnswer(err) {
			// No answer at all: ECS may have made the copy and not list it
			// yet, so a cancel waits out the listing delay.
			s.ambiguous[j.ID] = s.opts.Clock.Now()
		}
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

// noAnswer reports whether a call got no usable answer from ECS (a
// timeout, a broken connection, an unreadable reply), as opposed to an ECS
// error answer such as InternalError.
func noAnswer(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || strings.HasPrefix(cloud.CodeOf(err), "SDK.")
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
	if j.State == job.StateCancelling {
		return s.cancelWait(ctx, j, cause) // a cancel has no budget
	}
	// A job whose CopyImage may have been accepted fails only once a
	// lookup found no copy (submit does it): keep looking until then.
	hidden := j.State == job.StateSubmitting && s.isRecovering(j.ID)
	if !throttled && !hidden && j.Retries+1 > int32(s.opts.MaxRetries) {
		return s.fail(ctx, j.ID, cause)
	}
	d := backoff(s.opts.RetryBase, s.opts.RetryMax, s.backoffStep(j, throttled))
	now := s.opts.Clock.Now()
	state := j.State
	nj, err := s.update(ctx, j.ID, func(j *job.Job) error {
		if j.State != state {
			return errSkip
		}
		if !throttled && (!hidden || j.Retries < int32(s.opts.MaxRetries)) {
			j.Retries++ // grows the backoff; capped for lookups
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

// backoffStep is the exponent of a job's next backoff: its retries so far,
// or, for a Throttling answer, the throttles in a row (counted in memory,
// so that throttling slows a job without using up its retry budget).
func (s *Scheduler) backoffStep(j *job.Job, throttled bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !throttled {
		delete(s.throttles, j.ID)
		return int(min(j.Retries, 16))
	}
	n := s.throttles[j.ID]
	s.throttles[j.ID] = min(n+1, 16)
	return n
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
	return s.failWith(ctx, id, jobError(cause, false))
}

// failWith ends a job FAILED. A job with a copy of ours in ECS first
// removes it (as a cancel does, state CANCELLING without CancelRequested)
// and fails once it is gone: no job ends FAILED with its copy in ECS.
func (s *Scheduler) failWith(ctx context.Context, id string, why *job.Error) error {
	now := s.opts.Clock.Now()
	j, err := s.update(ctx, id, func(j *job.Job) error {
		if j.State.Terminal() {
			return errSkip
		}
		j.Error = why
		j.NextAttemptTime = time.Time{}
		if j.DestinationImageID != "" && !j.Adopted && j.State != job.StateQueued {
			j.State = job.StateCancelling
			j.Failure = why
			j.Retries = 0
			return nil
		}
		j.State = job.StateFailed
		j.FinishTime = now
		return nil
	})
	if err != nil {
		return ignoreSkip(err)
	}
	if j.State == job.StateCancelling {
		s.log.Warn("job failed; removing its copy before it ends FAILED", "job", j.ID, "copy", j.DestinationImageID, "code", why.Code)
		s.queue.Add(keyJob + j.ID)
	}
	return nil
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

// cancelCopy carries a CANCELLING job through until its copy is gone,
// whatever ECS answers and however long it takes: CancelCopyImage while
// the copy is in flight; once it is Available (the copy finished first, or
// ECS answered CancelNotSupported and the copy ran to its end) or failed,
// unsharing and DeleteImage. Every failure is retried with capped backoff
// outside the job's retry budget (cancelWait). An adopted copy is not
// proven ours and is left alone.
func (s *Scheduler) cancelCopy(ctx context.Context, j *job.Job) error {
	now := s.opts.Clock.Now()
	if j.DestinationImageID == "" {
		return s.cancelled(ctx, j.ID, now, "")
	}
	if j.Adopted {
		return s.cancelled(ctx, j.ID, now, "the copy "+j.DestinationImageID+" was adopted, not made by this installation: left in ECS")
	}
	switch j.CloudStatus {
	case cloud.StatusAvailable, cloud.StatusCreateFailed, cloud.StatusUnAvailable:
		return s.removeCopy(ctx, j)
	}
	failpoint.Hit(failpoint.BeforeCancelCopyImage)
	err := s.mutate(ctx, cloud.ActionCancelCopyImage, j.ID, j.DestinationRegion, j.DestinationImageID, false, func(ctx context.Context) error {
		return s.cloud.CancelCopyImage(ctx, j.DestinationRegion, j.DestinationImageID)
	})
	failpoint.Hit(failpoint.AfterCancelCopyImage)
	if err == nil {
		// ECS removes the copy; a poll soon confirms it is gone.
		s.mu.Lock()
		s.cancelOK[j.ID] = true
		s.mu.Unlock()
		s.schedulePoll(j.DestinationRegion, s.opts.PollMin)
		return nil
	}
	if ctx.Err() != nil {
		return nil
	}
	switch code := cloud.CodeOf(err); {
	case cloud.ClassOf(err) == cloud.ClassNotFound:
		return s.cancelled(ctx, j.ID, now, "")
	case code == cloud.CodeIncorrectStatus || code == cloud.CodeNotFromCopy:
		// The copy finished (or failed) before the cancel reached it. A
		// cancelled job leaves no copy behind, so delete it.
		return s.removeCopy(ctx, j)
	}
	// CancelNotSupported: keep following the copy; a poll turns the cancel
	// into a delete once it ends. Anything else: try again later.
	return s.cancelWait(ctx, j, err)
}

// removeCopy deletes a cancelled (or failing) job's copy, taking back the
// sharing the job granted first (ECS refuses to delete a shared image).
func (s *Scheduler) removeCopy(ctx context.Context, j *job.Job) error {
	now := s.opts.Clock.Now()
	if len(j.ShareAccounts) > 0 && j.CloudStatus == cloud.StatusAvailable {
		err := s.mutate(ctx, cloud.ActionModifyImageSharePermission, j.ID, j.DestinationRegion, j.DestinationImageID, false, func(ctx context.Context) error {
			return s.cloud.UnshareImage(ctx, j.DestinationRegion, j.DestinationImageID, j.ShareAccounts)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && cloud.ClassOf(err) == cloud.ClassNotFound {
			return s.cancelled(ctx, j.ID, now, "")
		}
		if err != nil {
			return s.cancelWait(ctx, j, err)
		}
	}
	err := s.mutate(ctx, cloud.ActionDeleteImage, j.ID, j.DestinationRegion, j.DestinationImageID, false, func(ctx context.Context) error {
		return s.cloud.DeleteImage(ctx, j.DestinationRegion, j.DestinationImageID)
	})
	if ctx.Err() != nil {
		return nil
	}
	if err == nil || cloud.ClassOf(err) == cloud.ClassNotFound {
		return s.cancelled(ctx, j.ID, now, "")
	}
	return s.cancelWait(ctx, j, err)
}

// cancelled ends a CANCELLING job whose copy is gone (or was never ours):
// CANCELLED after a cancel, FAILED (keeping its error) after the cleanup
// of a failing job. note, when set, says why a copy was left.
func (s *Scheduler) cancelled(ctx context.Context, id string, now time.Time, note string) error {
	_, err := s.update(ctx, id, func(j *job.Job) error {
		if j.State.Terminal() {
			return errSkip
		}
		j.State = job.StateCancelled
		j.Error = nil
		if j.Failure != nil && !j.CancelRequested {
			j.State = job.StateFailed // the cleanup of a failing job is done
			j.Error = j.Failure
		}
		j.Failure = nil
		if note != "" {
			j.Error = &job.Error{Code: "AdoptedCopyKept", Message: note}
		}
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
// An adopted copy is not proven ours and is not modified.
func postCopyActions(j *job.Job) []string {
	if j.Adopted {
		return nil
	}
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
			err = s.mutate(ctx, cloud.ActionModifyImageAttribute, j.ID, j.DestinationRegion, j.DestinationImageID, false, func(ctx context.Context) error {
				return s.cloud.SetImageFamily(ctx, j.DestinationRegion, j.DestinationImageID, j.ImageFamily)
			})
		case "share":
			err = s.mutate(ctx, cloud.ActionModifyImageSharePermission, j.ID, j.DestinationRegion, j.DestinationImageID, false, func(ctx context.Context) error {
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
	// The copy ended between the last poll and this one: learn its
	// duration from when the last poll expected it to end, not from when
	// this one happened to look.
	end := now
	if last := s.get(id); last != nil && !last.ProgressTime.IsZero() && last.Remaining > 0 {
		if e := last.ProgressTime.Add(last.Remaining); e.Before(now) {
			end = e
		}
	}
	j, err := s.update(ctx, id, func(j *job.Job) error {
		if j.State != job.StateCopying && j.State != job.StateWaiting || j.CancelRequested {
			return errSkip // a cancel recorded by another writer: the job's step cancels
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
	s.est.observeOutcome(j.DestinationRegion, false)
	if started && end.After(start) {
		d := end.Sub(start)
		s.est.observe(j.Route(), j.SizeGiB, d)
		if s.opts.Observer != nil {
			s.opts.Observer.CopyFinished(j.Route(), d)
		}
	}
	return nil
}
