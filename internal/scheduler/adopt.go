package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// Adopt rebuilds jobs from the copies ECS holds with replicatord's lineage
// tags and this installation's owner tag, for a state file that was lost
// or replaced: a copy still in flight is followed again instead of being
// made a second time, and a finished copy is recorded as SUCCEEDED. The
// jobs say they are adopted and what they were matched on: tags are no
// proof, so the copies are never cancelled, deleted or modified unless
// their policy sets retention.prune_adopted. Copies whose job the store
// knows, copies of another owner and copies without an owner tag (made
// before it existed: only their jobs prove them ours) are left alone. It
// returns how many jobs it created; ErrNotLeader unless started.
func (s *Scheduler) Adopt(ctx context.Context, regions []string) (int, error) {
	if !s.leading.Load() {
		return 0, fmt.Errorf("adopt copies: %w", ErrNotLeader)
	}
	now := s.opts.Clock.Now()
	adopted := 0
	var errs []error
	for _, region := range regions {
		var imgs []cloud.Image
		err := s.call(ctx, cloud.ActionDescribeImages, func(ctx context.Context) error {
			var err error
			imgs, err = s.cloud.DescribeImages(ctx, cloud.ImageQuery{
				Region: region, Statuses: cloud.AllStatuses, OwnerAlias: "self",
				Tags: map[string]string{job.TagJobID: "", job.TagOwner: s.opts.Owner}, // any job of ours
			})
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("list copies in %s: %w", region, err))
			continue
		}
		var jobs []*job.Job
		for _, im := range imgs {
			j := adoptedJob(im, region, now)
			if j == nil || im.Tags[job.TagOwner] != s.opts.Owner {
				continue
			}
			if _, err := s.store.Get(ctx, j.ID); !errors.Is(err, errdefs.ErrNotFound) {
				continue // known (or unreadable: leave it to the operator)
			}
			jobs = append(jobs, j)
		}
		if len(jobs) == 0 {
			continue
		}
		if err := s.Submit(ctx, jobs...); err != nil {
			errs = append(errs, fmt.Errorf("adopt copies in %s: %w", region, err))
			continue
		}
		adopted += len(jobs)
		for _, j := range jobs {
			s.log.Info("adopted copy", "job", j.ID, "copy", j.DestinationImageID, "region", region, "state", j.State.String())
		}
	}
	return adopted, errors.Join(errs...)
}

// adoptedJob rebuilds the job of a lineage-tagged copy, or nil when the
// tags are not replicatord's.
func adoptedJob(im cloud.Image, region string, now time.Time) *job.Job {
	t := im.Tags
	if !job.ValidID(t[job.TagJobID]) || t[job.TagSourceImage] == "" || t[job.TagSourceRegion] == "" {
		return nil
	}
	attempt, _ := strconv.Atoi(t[job.TagAttempt])
	j := &job.Job{
		ID:                   t[job.TagJobID],
		Policy:               t[job.TagPolicy],
		SourceRegion:         t[job.TagSourceRegion],
		SourceImageID:        t[job.TagSourceImage],
		SizeGiB:              im.SizeGiB,
		DestinationRegion:    region,
		DestinationImageID:   im.ID,
		DestinationImageName: im.Name,
		Attempts:             int32(max(attempt, 1)),
		CloudStatus:          im.Status,
		ProgressPercent:      im.ProgressPercent,
		CreateTime:           now,
		Tags:                 userTags(t),
		Adopted:              true,
		AdoptionReason: fmt.Sprintf("found by tags %s=%s, %s=%s, %s=%s/%s, attempt %s with a new state file at %s",
			job.TagOwner, t[job.TagOwner], job.TagJobID, t[job.TagJobID], job.TagSourceImage, t[job.TagSourceRegion], t[job.TagSourceImage],
			t[job.TagAttempt], now.UTC().Format(time.RFC3339)),
		SubmitTime: now,
	}
	switch im.Status {
	case cloud.StatusAvailable:
		j.State = job.StateSucceeded
		j.ProgressPercent = 100
		j.FinishTime = now
	case cloud.StatusWaiting:
		j.State = job.StateWaiting
	default: // Creating; a failed copy is cleaned up and recopied by the poller
		j.State = job.StateCopying
	}
	return j
}

// userTags drops the lineage tags from a copy's tags.
func userTags(tags map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range tags {
		switch k {
		case job.TagJobID, job.TagSourceImage, job.TagSourceRegion, job.TagPolicy, job.TagAttempt, job.TagOwner:
		default:
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
