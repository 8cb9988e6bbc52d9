// Package server implements replicator.v1.ReplicatorService: it validates
// requests, converts between the API's messages and the engine's types, and
// calls the engine. It holds no engine logic and knows the engine only
// through the interfaces it declares: Jobs (the scheduler: submit, cancel,
// retry, estimates) and Policies (the reconciler: status, plan, trigger);
// jobs are read from the state.Store, and the Copy and Watch streams follow
// it with state.Snapshot and state.Follow, which own the watch-resume
// protocol. Handlers return errdefs errors; internal/transport's
// interceptors turn them into gRPC statuses, once, on the way out.
//
// What it decides is what a request means: for Copy, the fingerprint a
// request_id is bound to (every parameter but detach) and which existing
// job may answer a destination instead of a new copy (reusable); the store
// applies both atomically (state.Store.CreateRequest, through
// Jobs.SubmitRequest). Echoed input is clipped with internal/input.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

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
	// SubmitRequest submits an API request's jobs and records its id with
	// them, or answers with the jobs it reuses (see state.Request).
	SubmitRequest(ctx context.Context, r *state.Request) (*state.RequestResult, error)
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
	// CloudReady, if set, is asked before a region name is checked: an
	// error (wrapping errdefs.ErrUnavailable) means the region list is not
	// known yet, and the request is refused with it rather than accepted
	// unchecked.
	CloudReady func() error
	// Status fills GetStatus; nil answers it UNIMPLEMENTED.
	Status func() Status
	Clock  clock.Clock
	Logger *slog.Logger
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
	// lookup batches the Copy RPC's source lookups.
	lookup *sourceLookup
	opts   Options

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
	return &Server{store: store, sched: sched, cloud: provider, lookup: newSourceLookup(provider), opts: opts, stopping: make(chan struct{})}
}

// Stop ends every Copy and Watch stream with UNAVAILABLE, so that a
// graceful stop of the gRPC server does not wait for them.
func (s *Server) Stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// Register registers the service on g.
func (s *Server) Register(g *grpc.Server) { pb.RegisterReplicatorServiceServer(g, s) }

// Copy creates one job per destination and streams their changes. With a
// request_id, a repeated call answers with the first call's jobs; without
// allow_duplicate, a job that already makes (or made) the same copy answers
// instead of a new one.
func (s *Server) Copy(req *pb.CopyRequest, stream grpc.ServerStreamingServer[pb.CopyResponse]) error {
	ctx := stream.Context()
	if err := s.validateCopy(req); err != nil {
		return err
	}
	res, err := s.copyRequest(ctx, req)
	if err != nil {
		return err
	}
	ids := res.Record.JobIDs
	outcome := make(map[string]pb.CopyOutcome, len(ids))
	var existing []string
	for i, id := range ids {
		outcome[id] = pb.CopyOutcome_COPY_OUTCOME_CREATED
		if i < len(res.Record.Existing) && res.Record.Existing[i] {
			outcome[id] = pb.CopyOutcome_COPY_OUTCOME_EXISTING
			existing = append(existing, id)
		}
	}
	s.opts.Logger.Info("copy requested", "image", req.GetSourceImageId(), "from", req.GetSourceRegion(), "to", req.GetDestinationRegions(),
		"jobs", ids, "existing", existing, "request_id", req.GetRequestId(), "replayed", res.Replayed)
	done := func(j *job.Job) bool {
		return j.State.Terminal() || (req.GetDetach() && j.DestinationImageID != "")
	}
	// Every job is sent as it is now first (an existing or replayed job may
	// have no change left to stream), then its changes.
	o := s.followOptions(state.Filter{IDs: ids}, 0, nil, len(ids), done)
	o.Current = true
	return state.Follow(ctx, s.store, o, func(rev int64, j *job.Job) error {
		return stream.Send(&pb.CopyResponse{Job: toPB(j, s.opts.Clock.Now()), Revision: rev, Outcome: outcome[j.ID], Replayed: res.Replayed})
	})
}

// copyRequest answers a valid Copy with its jobs: the first answer again
// for a request_id already seen with the same parameters (ALREADY_EXISTS
// with other parameters), otherwise the jobs the scheduler created or
// reused.
func (s *Server) copyRequest(ctx context.Context, req *pb.CopyRequest) (*state.RequestResult, error) {
	fp, summary := copyFingerprint(req)
	if id := req.GetRequestId(); id != "" {
		// A replay needs neither the source (it may be gone by now) nor a
		// write; CreateRequest checks again, atomically, for a concurrent
		// first call.
		r, err := s.store.GetRequest(ctx, id)
		switch {
		case err == nil && r.Record.Fingerprint != fp:
			return nil, r.Record.ErrReused()
		case err == nil:
			return r, nil
		case !errors.Is(err, errdefs.ErrNotFound):
			return nil, err
		}
	}
	src, err := s.sourceImage(ctx, req.GetSourceRegion(), req.GetSourceImageId())
	if err != nil {
		return nil, err
	}
	now := s.opts.Clock.Now()
	r := &state.Request{ID: req.GetRequestId(), Fingerprint: fp, Summary: summary}
	for _, d := range req.GetDestinationRegions() {
		r.Jobs = append(r.Jobs, &job.Job{
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
			Priority:               req.GetPriority(),
			State:                  job.StateQueued,
			CreateTime:             now,
		})
	}
	if !req.GetAllowDuplicate() {
		r.Reuse = reusable
	}
	return s.sched.SubmitRequest(ctx, r)
}

// reusable says whether an existing job answers a Copy without a new copy
// (wanted is the job the Copy would create; the store has matched source
// and destination): the existing job is SUCCEEDED or still on its way (not
// being cancelled), has the requested copy name when one was given, and is
// encrypted (with the requested key, if any) when encryption was asked for.
func reusable(existing, wanted *job.Job) bool {
	live := !existing.State.Terminal() && existing.State != job.StateCancelling && !existing.CancelRequested
	if existing.State != job.StateSucceeded && !live {
		return false
	}
	if wanted.DestinationImageName != "" && existing.DestinationImageName != wanted.DestinationImageName {
		return false
	}
	if wanted.Encrypted && (!existing.Encrypted || (wanted.KMSKeyID != "" && existing.KMSKeyID != wanted.KMSKeyID)) {
		return false
	}
	return true
}

// copyFingerprint digests what a Copy asks for — every field but detach
// and request_id, destinations in any order — and summarises it for the
// error that refuses a reused request_id.
func copyFingerprint(req *pb.CopyRequest) (fingerprint, summary string) {
	dests := slices.Clone(req.GetDestinationRegions())
	slices.Sort(dests)
	b, _ := json.Marshal(struct {
		SourceRegion, SourceImageID string
		Destinations                []string
		Name, Description           string
		Encrypted                   bool
		KMSKeyID                    string
		Tags                        map[string]string // encoded with sorted keys
		AllowDuplicate              bool
		Priority                    int32 `json:",omitempty"` // omitted at 0: ids recorded before it keep their fingerprint
	}{req.GetSourceRegion(), req.GetSourceImageId(), dests, req.GetDestinationImageName(), req.GetDestinationDescription(),
		req.GetEncrypted(), req.GetKmsKeyId(), req.GetTags(), req.GetAllowDuplicate(), req.GetPriority()})
	sum := sha256.Sum256(b)
	summary = fmt.Sprintf("copy %s from %s to %s", req.GetSourceImageId(), req.GetSourceRegion(), strings.Join(dests, ", "))
	if n := req.GetDestinationImageName(); n != "" {
		summary += " named " + n
	}
	return hex.EncodeToString(sum[:]), summary
}

// sourceImage looks the source up in ECS: it must exist and be Available.
func (s *Server) sourceImage(ctx context.Context, region, id string) (cloud.Image, error) {
	// Only the account's own custom images can be copied to another region:
	// public, shared-in and marketplace images are not sources (the lookup
	// asks for ImageOwnerAlias=self).
	im, ok, err := s.lookup.lookup(ctx, region, id)
	if err != nil {
		return cloud.Image{}, fmt.Errorf("look up source image %s in %s: %w", id, region, err)
	}
	if ok {
		if im.Status != cloud.StatusAvailable {
			return im, fmt.Errorf("source image %s in %s is %s; only Available images can be copied: %w", id, region, im.Status, errdefs.ErrFailedPrecondition)
		}
		return im, nil
	}
	return cloud.Image{}, fmt.Errorf("source image %s is not one of this account's custom images in %s: %w", id, region, errdefs.ErrNotFound)
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
	// A from_revision ahead of the store is the store's Watch to refuse
	// (OUT_OF_RANGE, in state.Follow below): it reads the revision when it
	// can, where Store.Revision() on etcd answers its last good read while
	// etcd does not answer, and would refuse a revision another replica
	// wrote since.
	if from == 0 {
		// The snapshot is streamed a page at a time, in constant memory;
		// every message carries the revision read before the first page,
		// so the stream's revisions never go down.
		rev, changed, err := state.Snapshot(ctx, s.store, f, func(rev int64, j *job.Job) error {
			return stream.Send(&pb.WatchResponse{Revision: rev, Job: toPB(j, s.opts.Clock.Now()), Snapshot: true})
		})
		if err != nil {
			return err
		}
		if err := stream.Send(&pb.WatchResponse{Revision: rev, SnapshotComplete: true}); err != nil {
			return err
		}
		// Jobs read after rev may be newer than rev (changed): follow
		// skips the changes the snapshot already holds.
		return state.Follow(ctx, s.store, s.followOptions(f, rev, changed, 0, nil), s.sendWatch(stream))
	}
	// A resume sends the changes at from_revision again, then the later
	// ones: one transaction may change several jobs at one revision (on
	// etcd, the jobs of one Copy), and a stream that broke between them
	// left the client with only some. Those it has come again, unchanged.
	return state.Follow(ctx, s.store, s.followOptions(f, from-1, nil, 0, nil), s.sendWatch(stream))
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

func (s *Server) sendWatch(stream grpc.ServerStreamingServer[pb.WatchResponse]) func(int64, *job.Job) error {
	return func(rev int64, j *job.Job) error {
		return stream.Send(&pb.WatchResponse{Revision: rev, Job: toPB(j, s.opts.Clock.Now())})
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

// caller names who calls, for a cancel's record: the API and the peer's
// address (no token or certificate detail: those are secrets or noise).
func caller(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		a := p.Addr.String()
		if a == "" || a == "@" {
			a = "unix socket"
		}
		if len(a) > 100 {
			a = a[:100]
		}
		return "api (" + a + ")"
	}
	return "api"
}

// Cancel cancels jobs.
func (s *Server) Cancel(ctx context.Context, req *pb.CancelRequest) (*pb.CancelResponse, error) {
	if err := checkJobIDs("job_ids", req.GetJobIds()); err != nil {
		return nil, err
	}
	jobs, err := s.sched.Cancel(job.WithActor(ctx, caller(ctx)), req.GetJobIds())
	if err != nil {
		return nil, err
	}
	s.opts.Logger.Info("cancel requested", "jobs", req.GetJobIds())
	return &pb.CancelResponse{Jobs: toPBs(jobs, s.opts.Clock.Now())}, nil
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
	return &pb.RetryResponse{Jobs: toPBs(jobs, s.opts.Clock.Now())}, nil
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
	return &pb.GetJobResponse{Job: toPB(j, s.opts.Clock.Now())}, nil
}

// ListJobs lists jobs, newest first.
func (s *Server) ListJobs(ctx context.Context, req *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	f := state.Filter{Policy: req.GetPolicy(), SourceImageID: req.GetSourceImageId(), DestinationRegion: req.GetDestinationRegion()}
	for _, st := range req.GetStates() {
		if st <= pb.JobState_JOB_STATE_UNSPECIFIED || int32(st) > int32(pb.JobState_JOB_STATE_PRUNED) {
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
	return &pb.ListJobsResponse{Jobs: toPBs(jobs, s.opts.Clock.Now()), NextPageToken: next, Revision: rev}, nil
}
