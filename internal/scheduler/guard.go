package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// Proof of ownership. Every ECS call that changes or removes an image
// (CancelCopyImage, DeleteImage, sharing and unsharing, image family)
// goes through mutate, the one choke point, and mutate sends it only when
// the store records the image as the copy of the named job: recorded from
// the CopyImage answer (accepted), or from a lineage lookup that matched
// the job's own job-id and attempt tags during recovery (findCopy). Tags
// alone are never proof: an image carrying a copy of replicatord's tags is
// refused because no job records its id. An adopted copy (found by tags
// with a new state file) is refused too, unless the caller allows it (a
// policy with retention.prune_adopted).

// errNotOurs is why mutate refused a call.
var errNotOurs = errors.New("not proven to be a copy this installation made")

// guard returns the store's job jobID if it records imageID in region as
// its copy, or an error wrapping errNotOurs (and errdefs.ErrFailedPrecondition).
func (s *Scheduler) guard(ctx context.Context, jobID, region, imageID string, allowAdopted bool) (*job.Job, error) {
	if jobID == "" || imageID == "" {
		return nil, fmt.Errorf("image %q in %s: no job recorded it: %w: %w", imageID, region, errNotOurs, errdefs.ErrFailedPrecondition)
	}
	j, err := s.store.Get(ctx, jobID)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, fmt.Errorf("image %s in %s: job %s is not in the store: %w: %w", imageID, region, jobID, errNotOurs, errdefs.ErrFailedPrecondition)
		}
		return nil, err
	}
	switch {
	case j.DestinationImageID != imageID || j.DestinationRegion != region:
		return nil, fmt.Errorf("image %s in %s: job %s records copy %q in %s: %w: %w",
			imageID, region, jobID, j.DestinationImageID, j.DestinationRegion, errNotOurs, errdefs.ErrFailedPrecondition)
	case j.Adopted && !allowAdopted:
		return nil, fmt.Errorf("image %s in %s: job %s adopted it (%s); set retention.prune_adopted to let replicatord remove adopted copies: %w: %w",
			imageID, region, jobID, j.AdoptionReason, errNotOurs, errdefs.ErrFailedPrecondition)
	}
	return j, nil
}

// mutate runs fn, an ECS call named action that changes image imageID in
// region, once guard has found the proof in the store. A refusal is logged
// and counted; fn is not called.
func (s *Scheduler) mutate(ctx context.Context, action, jobID, region, imageID string, allowAdopted bool, fn func(context.Context) error) error {
	if _, err := s.guard(ctx, jobID, region, imageID, allowAdopted); err != nil {
		if errors.Is(err, errNotOurs) {
			s.log.Error("refused an ECS call on an image not proven ours", "action", action, "job", jobID,
				"image", imageID, "region", region, "err", err.Error())
			if s.opts.Observer != nil {
				s.opts.Observer.Refused(action)
			}
		}
		return err
	}
	return s.call(ctx, action, fn)
}

// Job returns one job from the store.
func (s *Scheduler) Job(ctx context.Context, id string) (*job.Job, error) {
	return s.store.Get(ctx, id)
}

// Tombstones returns the cancelled pairs of a policy.
func (s *Scheduler) Tombstones(ctx context.Context, policy string) ([]job.Tombstone, error) {
	return s.store.Tombstones(ctx, policy)
}

// SubmitPolicy stores new policy jobs durably and schedules them (as
// Submit: passive, it stores them only), except
// those whose pair was cancelled: the store checks the tombstones in the
// same transaction as the insert, so a reconcile that listed ECS before a
// cancel cannot bring the pair back. It returns the tombstones that
// stopped a job.
func (s *Scheduler) SubmitPolicy(ctx context.Context, jobs ...*job.Job) ([]job.Tombstone, error) {
	s.prepare(jobs)
	skipped, err := s.store.CreateUnlessCancelled(ctx, jobs...)
	if err != nil {
		return nil, err
	}
	stopped := map[string]bool{}
	for _, t := range skipped {
		stopped[job.TombstoneKey(t.Policy, t.SourceImageID, t.DestinationRegion)] = true
	}
	made := make([]*job.Job, 0, len(jobs))
	for _, j := range jobs {
		if j.Policy != "" && stopped[job.TombstoneKey(j.Policy, j.SourceImageID, j.DestinationRegion)] {
			continue
		}
		made = append(made, j)
	}
	s.created(made)
	return skipped, nil
}

// LiftCancels lifts the tombstones of a policy's cancelled pairs whose
// source image is in sourceIDs (a policy change that names them), so that
// the policy copies them again; the cancelled jobs stay CANCELLED and say
// why (CancelLifted). It returns how many were lifted.
func (s *Scheduler) LiftCancels(ctx context.Context, policy string, sourceIDs []string, why string) (int, error) {
	if len(sourceIDs) == 0 {
		return 0, nil
	}
	tombs, err := s.store.Tombstones(ctx, policy)
	if err != nil {
		return 0, err
	}
	named := map[string]bool{}
	for _, id := range sourceIDs {
		named[id] = true
	}
	n := 0
	for _, t := range tombs {
		if !named[t.SourceImageID] {
			continue
		}
		_, err := s.store.Update(ctx, t.JobID, func(j *job.Job) error {
			if j.CancelLifted != "" {
				return errSkip
			}
			j.CancelLifted = why
			return nil
		})
		if err := ignoreSkip(err); err != nil {
			return n, fmt.Errorf("lift the cancel of job %s: %w", t.JobID, err)
		}
		n++
	}
	return n, nil
}

// Prune deletes the copy imageID of a SUCCEEDED job for retention, once the
// store proves the job made it (an adopted copy only with allowAdopted),
// taking back the sharing in unshare first, and marks the job PRUNED with
// the reason. ErrNotLeader unless started.
func (s *Scheduler) Prune(ctx context.Context, jobID, imageID, reason string, unshare []string, allowAdopted bool) error {
	if !s.leading.Load() {
		return fmt.Errorf("prune %s: %w", imageID, ErrNotLeader)
	}
	if jobID == "" {
		return fmt.Errorf("image %s: no job recorded it: %w: %w", imageID, errNotOurs, errdefs.ErrFailedPrecondition)
	}
	j, err := s.store.Get(ctx, jobID)
	if err != nil {
		return fmt.Errorf("image %s: job %s: %w", imageID, jobID, err)
	}
	if j.State != job.StateSucceeded {
		return fmt.Errorf("job %s is %s, not SUCCEEDED: its copy is not pruned: %w", jobID, j.State, errdefs.ErrFailedPrecondition)
	}
	region := j.DestinationRegion
	if len(unshare) > 0 {
		err := s.mutate(ctx, cloud.ActionModifyImageSharePermission, jobID, region, imageID, allowAdopted, func(ctx context.Context) error {
			return s.cloud.UnshareImage(ctx, region, imageID, unshare)
		})
		if err != nil && cloud.ClassOf(err) != cloud.ClassNotFound {
			return fmt.Errorf("unshare: %w", err)
		}
	}
	err = s.mutate(ctx, cloud.ActionDeleteImage, jobID, region, imageID, allowAdopted, func(ctx context.Context) error {
		return s.cloud.DeleteImage(ctx, region, imageID)
	})
	if err != nil && cloud.ClassOf(err) != cloud.ClassNotFound {
		return err
	}
	return s.pruned(ctx, jobID, imageID, reason)
}

// CopyGone marks a SUCCEEDED job PRUNED when its copy no longer exists in
// ECS (looked up by id, so a copy merely missing from a tag listing is not
// taken for gone). ErrNotLeader unless started.
func (s *Scheduler) CopyGone(ctx context.Context, jobID string) error {
	if !s.leading.Load() {
		return fmt.Errorf("look up the copy of job %s: %w", jobID, ErrNotLeader)
	}
	j, err := s.store.Get(ctx, jobID)
	if err != nil {
		return err
	}
	if j.State != job.StateSucceeded || j.DestinationImageID == "" {
		return nil
	}
	var imgs []cloud.Image
	err = s.call(ctx, cloud.ActionDescribeImages, func(ctx context.Context) error {
		var err error
		imgs, err = s.cloud.DescribeImages(ctx, cloud.ImageQuery{Region: j.DestinationRegion, IDs: []string{j.DestinationImageID},
			Statuses: append(append([]string(nil), cloud.AllStatuses...), cloud.StatusDeprecated)})
		return err
	})
	if err != nil {
		return err
	}
	for _, im := range imgs {
		if im.ID == j.DestinationImageID && im.Status != cloud.StatusCreateFailed {
			return nil // still there
		}
	}
	return s.pruned(ctx, jobID, j.DestinationImageID, "the copy "+j.DestinationImageID+" no longer exists in "+j.DestinationRegion+" (deleted outside replicatord)")
}

func (s *Scheduler) pruned(ctx context.Context, jobID, imageID, reason string) error {
	now := s.opts.Clock.Now()
	_, err := s.update(ctx, jobID, func(j *job.Job) error {
		if j.State != job.StateSucceeded || j.DestinationImageID != imageID {
			return errSkip
		}
		j.State = job.StatePruned
		j.PruneReason = reason
		j.FinishTime = now
		j.CloudStatus = ""
		return nil
	})
	return ignoreSkip(err)
}

// cancelWait retries a cancel (or the cleanup before a FAILED) later, for
// as long as it takes: with capped backoff, outside the job's retry
// budget, the cause and the next attempt visible on the job.
func (s *Scheduler) cancelWait(ctx context.Context, j *job.Job, cause error) error {
	if ctx.Err() != nil {
		return nil
	}
	d := backoff(s.opts.RetryBase, s.opts.RetryMax, int(min(j.Retries, 16)))
	now := s.opts.Clock.Now()
	nj, err := s.update(ctx, j.ID, func(j *job.Job) error {
		if j.State != job.StateCancelling {
			return errSkip
		}
		if j.Retries < 1<<20 {
			j.Retries++
		}
		j.Error = jobError(cause, true)
		j.NextAttemptTime = now.Add(d)
		return nil
	})
	if err != nil {
		return ignoreSkip(err)
	}
	if s.opts.Observer != nil {
		s.opts.Observer.CancelRetry(cloud.CodeOf(cause))
	}
	s.queue.AddAfter(keyJob+nj.ID, d)
	// The copy may end meanwhile: a poll sees it and the cancel turns
	// into a delete.
	s.schedulePoll(nj.DestinationRegion, min(d, s.opts.PollMax))
	return nil
}

// ambiguousSince is when a job's CopyImage last failed in a way that may
// hide an accepted copy (zero if never, in this process).
func (s *Scheduler) ambiguousSince(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ambiguous[id]
}

// cancelSent reports whether ECS accepted a CancelCopyImage for the job's
// copy in this process (ECS knew the copy then: missing now means gone).
func (s *Scheduler) cancelSent(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelOK[id]
}
