package server

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/job"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// toPB converts a job for the API, at now: a COPYING job's progress and
// time left are extrapolated to now (job.EstimateProgress), beside what ECS
// last reported.
func toPB(j *job.Job, now time.Time) *pb.Job {
	if j == nil {
		return nil
	}
	out := &pb.Job{
		Id:                     j.ID,
		Policy:                 j.Policy,
		Priority:               j.Priority,
		SourceRegion:           j.SourceRegion,
		SourceImageId:          j.SourceImageID,
		SourceImageName:        j.SourceImageName,
		DestinationRegion:      j.DestinationRegion,
		DestinationImageId:     j.DestinationImageID,
		DestinationImageName:   j.DestinationImageName,
		DestinationDescription: j.DestinationDescription,
		State:                  pb.JobState(j.State),
		CloudStatus:            j.CloudStatus,
		Attempts:               j.Attempts,
		SizeGib:                j.SizeGiB,
		CreateTime:             ts(j.CreateTime),
		UpdateTime:             ts(j.UpdateTime),
		FinishTime:             ts(j.FinishTime),
		NextAttemptTime:        ts(j.NextAttemptTime),
		Revision:               j.Revision,
		Encrypted:              j.Encrypted,
		KmsKeyId:               j.KMSKeyID,
		Tags:                   j.Tags,
		Adopted:                j.Adopted,
		AdoptionReason:         j.AdoptionReason,
		PruneReason:            j.PruneReason,
		CancelledBy:            j.CancelledBy,
		CancelTime:             ts(j.CancelTime),
	}
	setProgress(out, j, now)
	if j.Error != nil {
		out.Error = &pb.JobError{Code: j.Error.Code, Message: j.Error.Message, RequestId: j.Error.RequestID, Retryable: j.Error.Retryable}
	}
	for _, a := range j.PostCopy {
		out.PostCopyActions = append(out.PostCopyActions, &pb.PostCopyAction{Name: a.Name, Done: a.Done, Error: a.Error})
	}
	return out
}

func toPBs(jobs []*job.Job, now time.Time) []*pb.Job {
	out := make([]*pb.Job, len(jobs))
	for i, j := range jobs {
		out[i] = toPB(j, now)
	}
	return out
}

// setProgress fills the progress fields: progress_percent and remaining as
// of now, ECS's report beside them.
func setProgress(out *pb.Job, j *job.Job, now time.Time) {
	pct, left, estimated := j.EstimateProgress(now)
	out.ProgressPercent, out.ProgressEstimated = pct, estimated
	out.ObservedProgressPercent = j.ProgressPercent
	if j.Remaining > 0 {
		out.ObservedRemaining = durationpb.New(j.Remaining)
	}
	// An estimate that ran out is 0s (any moment), not unknown.
	if left > 0 || estimated {
		out.Remaining = durationpb.New(left)
	}
	// A COPYING record from before progress_time was observed at its
	// update_time (job.ProgressObserved).
	if !j.ProgressTime.IsZero() || j.State == job.StateCopying {
		out.ProgressTime = ts(j.ProgressObserved())
	}
}
