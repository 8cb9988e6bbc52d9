package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/failpoint"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/policy"
)

// runOnce observes, plans and acts for one policy, and records the result.
// It returns the run's duration and error. only, when not nil, makes it a
// retry of those destinations alone (see observe): the policy's own status
// (last run, counts) is left as it is and only theirs is recorded.
func (r *Reconciler) runOnce(ctx context.Context, l *loop, p *policy.Policy, only map[string]bool) (time.Duration, error) {
	start := r.clk.Now()
	l.update(func(s *PolicyStatus) { s.Running = true })
	obs, unlisted, err := r.observe(ctx, p, only, true)
	var items []policy.Item
	matched := 0
	if err == nil {
		items = p.Plan(obs)
		matched = len(p.Select(obs.Sources))
		err = r.act(ctx, p, items, obs)
	}
	if ctx.Err() == nil {
		r.recordDestinations(l, p, only, unlisted, err)
	}
	if only != nil {
		d := r.clk.Now().Sub(start)
		l.update(func(s *PolicyStatus) { s.Running = false })
		if ctx.Err() == nil {
			r.log.Info("destinations retried", "policy", p.Name, "regions", sortedKeys(only), "err", err, "planned", len(items), "duration", d)
		}
		return d, err
	}
	d := r.clk.Now().Sub(start)
	counts := map[policy.Action]int{}
	for _, it := range items {
		counts[it.Action]++
	}
	l.update(func(s *PolicyStatus) {
		s.Running = false
		s.LastRun, s.LastDuration = start, d
		s.Runs++
		s.LastError = ""
		if err != nil {
			s.Failures++
			s.LastError = err.Error()
		}
		if items != nil || err == nil {
			s.Matched, s.Actions = matched, counts
		}
	})
	if ctx.Err() == nil {
		if err != nil {
			r.log.Warn("policy run failed", "policy", p.Name, "err", err, "duration", d)
		} else {
			r.log.Info("policy reconciled", "policy", p.Name, "matched", matched,
				"copy", counts[policy.ActionCopy], "adopt", counts[policy.ActionAdopt], "prune", counts[policy.ActionPrune],
				"in_progress", counts[policy.ActionInProgress], "exists", counts[policy.ActionExists],
				"blocked", counts[policy.ActionBlocked], "foreign", counts[policy.ActionForeign],
				"skipped_cancelled", counts[policy.ActionSkippedCancelled], "unlisted", len(unlisted), "duration", d)
		}
	}
	return d, err
}

// recordDestinations updates the status of the destinations this run (or
// retry) listed: one that could not be listed, or whose retry failed,
// counts a failure and gets its own next retry (capped backoff, never
// later than the policy's interval); one listed in a run that went
// through is healthy again. A full run that failed for another reason
// leaves the listed ones as they were.
func (r *Reconciler) recordDestinations(l *loop, p *policy.Policy, only map[string]bool, unlisted map[string]error, runErr error) {
	now := r.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range p.Destinations {
		if only != nil && !only[d.Region] {
			continue
		}
		e := unlisted[d.Region]
		if e == nil && only != nil {
			e = runErr // a retry that failed counts against its regions
		}
		ds := l.dest(d.Region)
		switch {
		case e != nil:
			ds.Failures++
			ds.LastError = e.Error()
			ds.NextRetry = now.Add(backoff(r.retryMin, ds.Failures, p.Interval))
			r.log.Warn("destination not listed; retrying it alone", "policy", p.Name, "region", d.Region,
				"err", e, "failures", ds.Failures, "next_retry", ds.NextRetry)
		case runErr == nil:
			ds.Failures, ds.LastError, ds.NextRetry, ds.LastListed = 0, "", time.Time{}, now
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// copyStatuses shows copies in every status, Deprecated included, so that
// a copy a user deprecated is not copied again.
var copyStatuses = append(append([]string(nil), cloud.AllStatuses...), cloud.StatusDeprecated)

// observe reads what is: the source candidates, the policy's copies in
// every destination (all statuses), its jobs, the store's jobs named by
// the copies' job-id tags (the proof of ownership) and its tombstones.
// Jobs are read after the copies on purpose: the scheduler stores a job
// before it sends CopyImage ("durable before acting"), so any copy seen
// has its job visible in the later read, and a copy in flight is never
// mistaken for a foreign one. hook: call AfterList (runs only).
//
// A destination whose listing fails transiently (cloud.ClassRetryable: a
// 5xx, a timeout) is put in obs.Unlisted with its error in unlisted, and
// the others go on: Plan plans nothing there. Any other listing error
// (auth, forbidden, a source listing) fails the whole observation, as a
// configuration problem the run must report. only, when not nil, limits
// the destinations listed (a retry of those alone); the rest are Unlisted
// without an error.
func (r *Reconciler) observe(ctx context.Context, p *policy.Policy, only map[string]bool, hook bool) (obs policy.Observed, unlisted map[string]error, err error) {
	obs = policy.Observed{Copies: map[string][]cloud.Image{}, Owner: r.owner, Known: map[string]*job.Job{}, Unlisted: map[string]bool{}}
	sources, err := r.sources(ctx, p)
	if err != nil {
		return obs, nil, err
	}
	obs.Sources = sources
	if unlisted, err = r.listCopies(ctx, p, only, hook, &obs); err != nil {
		return obs, unlisted, err
	}
	return obs, unlisted, r.readJobs(ctx, p, hook, &obs)
}

// listCopies lists the policy's copies in each destination (see observe).
// hook: report each listing to OnDestination (runs only).
func (r *Reconciler) listCopies(ctx context.Context, p *policy.Policy, only map[string]bool, hook bool, obs *policy.Observed) (map[string]error, error) {
	unlisted := map[string]error{}
	for _, d := range p.Destinations {
		if only != nil && !only[d.Region] {
			obs.Unlisted[d.Region] = true
			continue
		}
		ims, err := r.cloud.DescribeImages(ctx, cloud.ImageQuery{
			Region: d.Region, Tags: map[string]string{job.TagPolicy: p.Name},
			Statuses: copyStatuses, OwnerAlias: "self",
		})
		if hook && r.onDest != nil && ctx.Err() == nil {
			r.onDest(p.Name, d.Region, err)
		}
		if err != nil {
			err = fmt.Errorf("list copies in %s: %w", d.Region, err)
			if ctx.Err() != nil || cloud.ClassOf(err) != cloud.ClassRetryable {
				return unlisted, err
			}
			obs.Unlisted[d.Region] = true
			unlisted[d.Region] = err
			continue
		}
		obs.Copies[d.Region] = ims
	}
	return unlisted, nil
}

// readJobs reads the store's side of obs: jobs, proofs, tombstones.
func (r *Reconciler) readJobs(ctx context.Context, p *policy.Policy, hook bool, obs *policy.Observed) error {
	var err error
	if hook {
		failpoint.Hit(failpoint.ReconcileAfterList)
		if r.hook != nil {
			r.hook(p.Name)
		}
	}
	if obs.Jobs, err = r.jobs.PolicyJobs(ctx, p.Name); err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	for _, ims := range obs.Copies {
		for _, im := range ims {
			id := im.Tags[job.TagJobID]
			if _, done := obs.Known[id]; done || !job.ValidID(id) {
				continue
			}
			j, err := r.jobs.Job(ctx, id)
			switch {
			case err == nil:
				obs.Known[id] = j
			case errors.Is(err, errdefs.ErrNotFound):
				obs.Known[id] = nil // foreign: no proof
			default:
				return fmt.Errorf("read job %s: %w", id, err)
			}
		}
	}
	for id, j := range obs.Known {
		if j == nil {
			delete(obs.Known, id)
		}
	}
	if obs.Tombstones, err = r.jobs.Tombstones(ctx, p.Name); err != nil {
		return fmt.Errorf("list tombstones: %w", err)
	}
	return nil
}

// sources lists the candidate source images with the filters ECS applies
// server-side (ids, tags); Plan applies the rest (glob, exclude, newest).
// The name glob is not sent: ECS matches ImageName fuzzily, not as a glob.
// Only Available images are listed (the DescribeImages default), so a
// source still being created does not count as the newest.
func (r *Reconciler) sources(ctx context.Context, p *policy.Policy) ([]cloud.Image, error) {
	q := cloud.ImageQuery{Region: p.Source.Region, Tags: p.Source.Images.Tags, OwnerAlias: "self"}
	ids := p.Source.Images.IDs
	if len(ids) == 0 {
		ims, err := r.cloud.DescribeImages(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("list source images in %s: %w", q.Region, err)
		}
		return ims, nil
	}
	var out []cloud.Image
	for len(ids) > 0 {
		n := min(len(ids), cloud.MaxIDsPerDescribe)
		q.IDs = ids[:n]
		ids = ids[n:]
		ims, err := r.cloud.DescribeImages(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("list source images in %s: %w", q.Region, err)
		}
		out = append(out, ims...)
	}
	return out, nil
}

// act carries out a plan: new copy jobs in one SubmitPolicy (pairs
// cancelled meanwhile are refused by the store, atomically), SUCCEEDED jobs
// whose copy is gone marked PRUNED, then the retention deletions, each
// checked against the store by the scheduler. It goes on after a failed
// step and returns every error. Foreign images are never touched.
func (r *Reconciler) act(ctx context.Context, p *policy.Policy, items []policy.Item, obs policy.Observed) error {
	now := r.clk.Now()
	sources := map[string]cloud.Image{}
	for _, s := range obs.Sources {
		sources[s.ID] = s
	}
	var jobs []*job.Job
	var errs []error
	for _, it := range items {
		if it.Action != policy.ActionCopy {
			continue
		}
		if it.JobID != "" {
			if err := r.jobs.CopyGone(ctx, it.JobID); err != nil {
				errs = append(errs, fmt.Errorf("job %s: %w", it.JobID, err))
			}
		}
		src, ok := sources[it.SourceImageID]
		dst, ok2 := p.Destination(it.DestinationRegion)
		if !ok || !ok2 {
			continue // cannot happen: Plan builds items from these
		}
		j, err := p.NewJob(src, dst, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("copy %s to %s: %w", src.ID, dst.Region, err))
			continue
		}
		jobs = append(jobs, j)
	}
	if len(jobs) > 0 {
		skipped, err := r.jobs.SubmitPolicy(ctx, jobs...)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("submit %d jobs: %w", len(jobs), err))...)
		}
		for _, t := range skipped {
			r.log.Info("pair cancelled during the run; not copied", "policy", p.Name, "source", t.SourceImageID,
				"region", t.DestinationRegion, "cancelled_job", t.JobID, "by", t.By)
		}
	}
	for _, it := range items {
		if it.Action != policy.ActionPrune {
			continue
		}
		// ECS refuses to delete a shared image (ImageUseShared): the
		// scheduler takes back the sharing this policy granted first.
		// Sharing granted by hand is left alone, and the delete then fails
		// with that reason.
		if err := r.jobs.Prune(ctx, it.JobID, it.DestinationImageID, it.Reason, p.Copy.ShareWithAccounts, p.Retention.PruneAdopted); err != nil {
			errs = append(errs, fmt.Errorf("prune %s in %s: %w", it.DestinationImageID, it.DestinationRegion, err))
			continue
		}
		r.log.Info("copy pruned by retention", slog.String("policy", p.Name), slog.String("image", it.DestinationImageID),
			slog.String("region", it.DestinationRegion), slog.String("source", it.SourceImageID), slog.String("job", it.JobID))
	}
	return errors.Join(errs...)
}
