// Package server implements replicator.v1.ReplicatorService: it validates
// requests, converts between the API's messages and the engine's types, and
// calls the engine. It holds no logic of its own and knows the engine only
// through the interfaces it declares: Jobs (the scheduler: submit, cancel,
// retry, estimates) and Policies (the reconciler: status, plan, trigger);
// jobs are read from the state.Store, and the Copy and Watch streams follow
// it with state.Snapshot and state.Follow, which own the watch-resume
// protocol. Handlers return errdefs errors; internal/transport's
// interceptors turn them into gRPC statuses, once, on the way out.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// Jobs is what the server needs of internal/scheduler: it submits, cancels
// and retries jobs and answers for the plan's estimate. The store is read
// directly.
type Jobs interface {
	Submit(ctx context.Context, jobs ...*job.Job) error
	Cancel(ctx context.Context, ids []string) ([]*job.Job, error)
	Retry(ctx context.Context, ids []string) ([]*job.Job, error)
	PolicyJobs(ctx context.Context, policy string) ([]*job.Job, error)
	Estimate(sourceRegion, destRegion string, sizeGiB int64) time.Duration
	Slots(region string) int
}

// Options configure a Server.
type Options struct {
	// Regions returns the regions the account can use, for validation;
	// nil skips the check.
	Regions func() map[string]bool
	Clock   clock.Clock
	Logger  *slog.Logger
	// Policies serves the policy RPCs; nil answers them UNIMPLEMENTED.
	Policies *PolicyOps
	// WatchStarted is called when a Watch stream starts; the function it
	// returns, when it ends (for a watchers gauge). nil for none.
	WatchStarted func() (done func())
}

// Server implements replicator.v1.ReplicatorService.
type Server struct {
	pb.UnimplementedReplicatorServiceServer
	store state.Store
	sched Jobs
	cloud cloud.Provider
	opts  Options

	stopping chan struct{}
	stopOnce sync.Once
}

var _ pb.ReplicatorServiceServer = (*Server)(nil)

// New returns a Server.
func New(store state.Store, sched Jobs, provider cloud.Provider, opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{store: store, sched: sched, cloud: provider, opts: opts, stopping: make(chan struct{})}
}

// Stop ends every Copy and Watch stream with UNAVAILABLE, so that a
// graceful stop of the gRPC server does not wait for them.
func (s *Server) Stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// Register registers the service on g.
func (s *Server) Register(g *grpc.Server) { pb.RegisterReplicatorServiceServer(g, s) }

// Copy creates one job per destination and streams their changes.
func (s *Server) Copy(req *pb.CopyRequest, stream grpc.ServerStreamingServer[pb.CopyResponse]) error {
	ctx := stream.Context()
	if err := s.validateCopy(req); err != nil {
		return err
	}
	src, err := s.sourceImage(ctx, req.GetSourceRegion(), req.GetSourceImageId())
	if err != nil {
		return err
	}
	now := s.opts.Clock.Now()
	var jobs []*job.Job
	for _, d := range req.GetDestinationRegions() {
		jobs = append(jobs, &job.Job{
			ID:                     job.NewID(now),
			SourceRegion:           req.GetSourceRegion(),
			SourceImageID:          req.GetSourceImageId(),
			SourceImageName:        src.Name,
			SizeGiB:                src.SizeGiB,
			DestinationRegion:      d,
			DestinationImageName:   req.GetDestinationImageName(),
			DestinationDescription: req.GetDestinationDescription(),
			Encrypted:              req.GetEncrypted(),
			KMSKeyID:               req.GetKmsKeyId(),
			Tags:                   req.GetTags(),
			State:                  job.StateQueued,
			CreateTime:             now,
		})
	}
	from := s.store.Revision()
	if err := s.sched.Submit(ctx, jobs...); err != nil {
		return err
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	s.opts.Logger.Info("copy requested", "image", req.GetSourceImageId(), "from", req.GetSourceRegion(), "to", req.GetDestinationRegions(), "jobs", ids)
	done := func(j *job.Job) bool {
		return j.State.Terminal() || (req.GetDetach() && j.DestinationImageID != "")
	}
	return state.Follow(ctx, s.store, s.followOptions(state.Filter{IDs: ids}, from, nil, len(ids), done), func(rev int64, j *job.Job) error {
		return stream.Send(&pb.CopyResponse{Job: toPB(j), Revision: rev})
	})
}

// sourceImage looks the source up in ECS: it must exist and be Available.
func (s *Server) sourceImage(ctx context.Context, region, id string) (cloud.Image, error) {
	imgs, err := s.cloud.DescribeImages(ctx, cloud.ImageQuery{Region: region, IDs: []string{id}, Statuses: append(slices.Clone(cloud.AllStatuses), cloud.StatusDeprecated)})
	if err != nil {
		return cloud.Image{}, fmt.Errorf("look up source image %s in %s: %w", id, region, err)
	}
	for _, im := range imgs {
		if im.ID == id {
			if im.Status != cloud.StatusAvailable {
				return im, fmt.Errorf("source image %s in %s is %s; only Available images can be copied: %w", id, region, im.Status, errdefs.ErrFailedPrecondition)
			}
			return im, nil
		}
	}
	return cloud.Image{}, fmt.Errorf("source image %s not found in %s: %w", id, region, errdefs.ErrNotFound)
}

// Watch streams job changes, after a snapshot unless from_revision is set.
func (s *Server) Watch(req *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchResponse]) error {
	ctx := stream.Context()
	if s.opts.WatchStarted != nil {
		defer s.opts.WatchStarted()()
	}
	f, err := s.watchFilter(req)
	if err != nil {
		return err
	}
	from := req.GetFromRevision()
	if from < 0 {
		return errdefs.Invalid("from_revision", "must not be negative")
	}
	if cur := s.store.Revision(); from > cur {
		return fmt.Errorf("from_revision %d is ahead of the store's revision %d (was the state file replaced?); watch without from_revision to start from a snapshot: %w", from, cur, errdefs.ErrOutOfRange)
	}
	if from == 0 {
		snap, rev, err := state.Snapshot(ctx, s.store, f)
		if err != nil {
			return err
		}
		for _, j := range snap {
			if err := stream.Send(&pb.WatchResponse{Revision: rev, Job: toPB(j), Snapshot: true}); err != nil {
				return err
			}
		}
		if err := stream.Send(&pb.WatchResponse{Revision: rev, SnapshotComplete: true}); err != nil {
			return err
		}
		// Jobs listed after rev may be newer than rev: follow skips the
		// changes the snapshot already holds.
		seen := make(map[string]int64, len(snap))
		for _, j := range snap {
			seen[j.ID] = j.Revision
		}
		return state.Follow(ctx, s.store, s.followOptions(f, rev, seen, 0, nil), sendWatch(stream))
	}
	return state.Follow(ctx, s.store, s.followOptions(f, from, nil, 0, nil), sendWatch(stream))
}

// followOptions are the state.FollowOptions of a stream: it ends when the
// server stops, and resumptions are logged.
func (s *Server) followOptions(f state.Filter, from int64, seen map[string]int64, want int, done func(*job.Job) bool) state.FollowOptions {
	return state.FollowOptions{
		Filter: f, From: from, Seen: seen, Want: want, Done: done,
		Stop: s.stopping,
		Resumed: func(from int64, reason error) {
			s.opts.Logger.Debug("watch resumed", "from", from, "reason", reason.Error())
		},
	}
}

func sendWatch(stream grpc.ServerStreamingServer[pb.WatchResponse]) func(int64, *job.Job) error {
	return func(rev int64, j *job.Job) error {
		return stream.Send(&pb.WatchResponse{Revision: rev, Job: toPB(j)})
	}
}

func (s *Server) watchFilter(req *pb.WatchRequest) (state.Filter, error) {
	f := state.Filter{Policy: req.GetPolicy(), SourceImageID: req.GetSourceImageId(), DestinationRegion: req.GetDestinationRegion()}
	if len(req.GetJobIds()) > 0 {
		if err := checkJobIDs("job_ids", req.GetJobIds()); err != nil {
			return f, err
		}
		f.IDs = req.GetJobIds()
	}
	if r := req.GetDestinationRegion(); r != "" && !regionIDRe.MatchString(r) {
		return f, errdefs.Invalid("destination_region", "%q is not a region id", clip(r))
	}
	if id := req.GetSourceImageId(); id != "" && !imageIDRe.MatchString(id) {
		return f, errdefs.Invalid("source_image_id", "%q is not a custom image id (m-...)", clip(id))
	}
	return f, nil
}

// Cancel cancels jobs.
func (s *Server) Cancel(ctx context.Context, req *pb.CancelRequest) (*pb.CancelResponse, error) {
	if err := checkJobIDs("job_ids", req.GetJobIds()); err != nil {
		return nil, err
	}
	jobs, err := s.sched.Cancel(ctx, req.GetJobIds())
	if err != nil {
		return nil, err
	}
	s.opts.Logger.Info("cancel requested", "jobs", req.GetJobIds())
	return &pb.CancelResponse{Jobs: toPBs(jobs)}, nil
}

// Retry starts new attempts of failed or cancelled jobs.
func (s *Server) Retry(ctx context.Context, req *pb.RetryRequest) (*pb.RetryResponse, error) {
	if err := checkJobIDs("job_ids", req.GetJobIds()); err != nil {
		return nil, err
	}
	jobs, err := s.sched.Retry(ctx, req.GetJobIds())
	if err != nil {
		return nil, err
	}
	return &pb.RetryResponse{Jobs: toPBs(jobs)}, nil
}

// GetJob returns one job.
func (s *Server) GetJob(ctx context.Context, req *pb.GetJobRequest) (*pb.GetJobResponse, error) {
	if !job.ValidID(req.GetJobId()) {
		if req.GetJobId() == "" {
			return nil, errdefs.Invalid("job_id", "is required")
		}
		return nil, errdefs.Invalid("job_id", "%q is not a job id (j- and 26 characters)", clip(req.GetJobId()))
	}
	j, err := s.store.Get(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	return &pb.GetJobResponse{Job: toPB(j)}, nil
}

// ListJobs lists jobs, newest first.
func (s *Server) ListJobs(ctx context.Context, req *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	f := state.Filter{Policy: req.GetPolicy(), SourceImageID: req.GetSourceImageId(), DestinationRegion: req.GetDestinationRegion()}
	for _, st := range req.GetStates() {
		if st <= pb.JobState_JOB_STATE_UNSPECIFIED || int32(st) > int32(pb.JobState_JOB_STATE_CANCELLED) {
			return nil, errdefs.Invalid("states", "%d is not a job state", int32(st))
		}
		f.States = append(f.States, job.State(st))
	}
	size := int(req.GetPageSize())
	if size < 0 || size > maxPageSize {
		return nil, errdefs.Invalid("page_size", "must be between 0 and %d, got %d", maxPageSize, size)
	}
	if size == 0 {
		size = 100
	}
	jobs, next, rev, err := s.store.List(ctx, f, size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &pb.ListJobsResponse{Jobs: toPBs(jobs), NextPageToken: next, Revision: rev}, nil
}
