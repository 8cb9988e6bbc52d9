package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/policy"
	"github.com/replicatord/replicatord/internal/reconcile"
)

// Policies is what the policy RPCs need of internal/reconcile.
type Policies interface {
	Status() []reconcile.PolicyStatus
	Plan(ctx context.Context, names []string) ([]policy.Item, error)
	Trigger(name string) bool
}

// PolicyOps are the daemon's policy operations behind the policy RPCs.
type PolicyOps struct {
	Reconciler Policies
	// Reload re-reads and applies the policy file. A refused file returns
	// a *policy.ValidationErrors and changes nothing.
	Reload func(ctx context.Context) (added, removed, changed []string, err error)
	// Source names where the policies come from.
	Source func() string
}

func (s *Server) policyOps() (*PolicyOps, error) {
	if s.opts.Policies == nil || s.opts.Policies.Reconciler == nil || s.opts.Policies.Reload == nil {
		return nil, fmt.Errorf("policies are not enabled on this daemon: %w", errdefs.ErrUnimplemented)
	}
	return s.opts.Policies, nil
}

// runnableOps is policyOps for the RPCs that run policies against the cloud
// (plan, reconcile): refused while the cloud has not answered, when the
// daemon has no checked policies to run.
func (s *Server) runnableOps() (*PolicyOps, error) {
	ops, err := s.policyOps()
	if err != nil {
		return nil, err
	}
	if s.opts.CloudReady != nil {
		if err := s.opts.CloudReady(); err != nil {
			return nil, fmt.Errorf("policies start once the cloud answers and their regions are checked: %w", err)
		}
	}
	return ops, nil
}

// ListPolicies returns the loaded policies with their status.
func (s *Server) ListPolicies(ctx context.Context, _ *pb.ListPoliciesRequest) (*pb.ListPoliciesResponse, error) {
	ops, err := s.policyOps()
	if err != nil {
		return nil, err
	}
	resp := &pb.ListPoliciesResponse{}
	if ops.Source != nil {
		resp.Source = ops.Source()
	}
	for _, st := range ops.Reconciler.Status() {
		p := &pb.Policy{
			Name:              st.Name,
			Enabled:           st.Enabled,
			Interval:          durationpb.New(st.Interval),
			LastReconcileTime: ts(st.LastRun),
			NextReconcileTime: ts(st.NextRun),
			LastError:         st.LastError,
			MatchedImages:     int32(st.Matched),
		}
		for _, d := range st.Destinations {
			p.Destinations = append(p.Destinations, &pb.DestinationStatus{Region: d.Region, LastError: d.LastError,
				Failures: int32(d.Failures), NextRetryTime: ts(d.NextRetry), LastListedTime: ts(d.LastListed)})
		}
		if st.Policy != nil {
			p.SourceRegion = st.Policy.Source.Region
			p.Priority = st.Policy.Priority
			p.Definition = st.Policy.Definition()
			for _, d := range st.Policy.Destinations {
				p.DestinationRegions = append(p.DestinationRegions, d.Region)
			}
		}
		jobs, err := s.sched.PolicyJobs(ctx, st.Name)
		if err != nil {
			return nil, err
		}
		counts := map[job.State]int64{}
		for _, j := range jobs {
			counts[j.State]++
		}
		for state := job.StateQueued; state <= job.StatePruned; state++ {
			if n := counts[state]; n > 0 {
				p.JobCounts = append(p.JobCounts, &pb.JobStateCount{State: pb.JobState(state), Count: n})
			}
		}
		resp.Policies = append(resp.Policies, p)
	}
	return resp, nil
}

// PlanPolicies is a dry run of the policies: it reads ECS and changes
// nothing.
func (s *Server) PlanPolicies(ctx context.Context, req *pb.PlanPoliciesRequest) (*pb.PlanPoliciesResponse, error) {
	ops, err := s.runnableOps()
	if err != nil {
		return nil, err
	}
	for _, n := range req.GetPolicies() {
		if n == "" {
			return nil, errdefs.Invalid("policies", "a policy name must not be empty")
		}
	}
	items, err := ops.Reconciler.Plan(ctx, req.GetPolicies())
	if err != nil && len(items) == 0 {
		return nil, err
	}
	resp := &pb.PlanPoliciesResponse{}
	// Estimate as the lower bound of a fleet: per region, the larger of the
	// longest copy and the copies' total time over the region's slots.
	total := map[string]time.Duration{}
	longest := map[string]time.Duration{}
	for _, it := range items {
		resp.Items = append(resp.Items, &pb.PlanItem{
			Policy: it.Policy, SourceImageId: it.SourceImageID, SourceImageName: it.SourceImageName,
			DestinationRegion: it.DestinationRegion, Action: pb.PlanAction(it.Action), Reason: it.Reason,
			SizeGib: it.SizeGiB, DestinationImageId: it.DestinationImageID, DestinationImageName: it.DestinationImageName,
		})
		if it.Action != policy.ActionCopy {
			continue
		}
		resp.CopyGib += it.SizeGiB
		src := ""
		if p := s.policyByName(ops, it.Policy); p != nil {
			src = p.Source.Region
		}
		d := s.sched.Estimate(src, it.DestinationRegion, it.SizeGiB)
		total[it.DestinationRegion] += d
		longest[it.DestinationRegion] = max(longest[it.DestinationRegion], d)
	}
	var est time.Duration
	for r, t := range total {
		est = max(est, longest[r], t/time.Duration(max(s.sched.Slots(r), 1)))
	}
	if est > 0 {
		resp.EstimatedDuration = durationpb.New(est)
	}
	return resp, nil
}

func (s *Server) policyByName(ops *PolicyOps, name string) *policy.Policy {
	for _, st := range ops.Reconciler.Status() {
		if st.Name == name {
			return st.Policy
		}
	}
	return nil
}

// ReloadPolicies re-reads the policy file; a file with errors changes
// nothing and every error is returned.
func (s *Server) ReloadPolicies(ctx context.Context, _ *pb.ReloadPoliciesRequest) (*pb.ReloadPoliciesResponse, error) {
	ops, err := s.policyOps()
	if err != nil {
		return nil, err
	}
	added, removed, changed, err := ops.Reload(ctx)
	var ve *policy.ValidationErrors
	if errors.As(err, &ve) {
		resp := &pb.ReloadPoliciesResponse{Applied: false}
		for _, e := range ve.Errors {
			resp.Errors = append(resp.Errors, &pb.ValidationError{File: e.File, Line: int32(e.Line), Column: int32(e.Column), Policy: e.Policy, Message: e.Message})
		}
		return resp, nil
	}
	if err != nil {
		return nil, err
	}
	return &pb.ReloadPoliciesResponse{Applied: true, Added: added, Removed: removed, Changed: changed}, nil
}

// ReconcilePolicies runs policies now.
func (s *Server) ReconcilePolicies(ctx context.Context, req *pb.ReconcilePoliciesRequest) (*pb.ReconcilePoliciesResponse, error) {
	ops, err := s.runnableOps()
	if err != nil {
		return nil, err
	}
	names := req.GetPolicies()
	if len(names) == 0 {
		for _, st := range ops.Reconciler.Status() {
			if st.Enabled {
				names = append(names, st.Name)
			}
		}
	}
	for _, n := range names {
		if n == "" {
			return nil, errdefs.Invalid("policies", "a policy name must not be empty")
		}
		if s.policyByName(ops, n) == nil {
			return nil, fmt.Errorf("policy %q: %w", clip(n), errdefs.ErrNotFound)
		}
	}
	var out []string
	for _, n := range names {
		if ops.Reconciler.Trigger(n) {
			out = append(out, n)
		}
	}
	return &pb.ReconcilePoliciesResponse{Policies: out}, nil
}
