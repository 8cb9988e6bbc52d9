package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/policy"
)

// Jobs is the scheduler, as the reconciler sees it. Every call that
// changes an image goes through it, so that the scheduler's ownership
// guard (proof from the store) is the one choke point.
type Jobs interface {
	// PolicyJobs returns the policy's jobs: every non-terminal one and the
	// latest terminal one per source × region.
	PolicyJobs(ctx context.Context, policy string) ([]*job.Job, error)
	// Job returns one job from the store; errdefs.ErrNotFound if unknown.
	Job(ctx context.Context, id string) (*job.Job, error)
	// Tombstones returns the policy's cancelled pairs.
	Tombstones(ctx context.Context, policy string) ([]job.Tombstone, error)
	// SubmitPolicy durably creates and enqueues new policy jobs, except
	// those whose pair was cancelled (checked in the same store
	// transaction as the creation), which it returns.
	SubmitPolicy(ctx context.Context, jobs ...*job.Job) ([]job.Tombstone, error)
	// Prune deletes the copy imageID of job jobID for retention (taking
	// back the sharing in unshare first) once the store proves the job
	// made it, and marks the job PRUNED. An adopted copy is refused unless
	// allowAdopted.
	Prune(ctx context.Context, jobID, imageID, reason string, unshare []string, allowAdopted bool) error
	// CopyGone marks a SUCCEEDED job PRUNED if its copy no longer exists
	// (looked up by id); it does nothing if the copy is still there.
	CopyGone(ctx context.Context, jobID string) error
}

// Options tune a Reconciler; zero values get defaults.
type Options struct {
	Clock  clock.Clock  // default clock.Real{}
	Logger *slog.Logger // default slog.Default()
	// OnRun is called after every run of a policy (for metrics).
	OnRun func(policy string, err error, d time.Duration)
	// RetryMin is the wait after a first failed run; it doubles per failure
	// up to the policy's interval. Default 30s.
	RetryMin time.Duration
	// Owner is this installation's name (daemon.owner); default
	// job.DefaultOwner.
	Owner string
	// AfterList, when set, is called in a run after the copies were listed
	// and before the jobs are read (tests use it to order a race).
	AfterList func(policy string)
	// OnDestination is called after every listing of a destination's
	// copies in a run or a destination retry, with its error (nil when it
	// was listed), for the per-region metrics.
	OnDestination func(policy, region string, err error)
	// AfterRetry is called after a retry of failing destinations alone,
	// once the policy's next wake-up is armed (tests move a fake clock on
	// it).
	AfterRetry func(policy string, regions []string, err error)
}

// Reconciler runs the loops of the loaded policies.
type Reconciler struct {
	cloud    cloud.Provider
	jobs     Jobs
	clk      clock.Clock
	log      *slog.Logger
	onRun    func(string, error, time.Duration)
	retryMin time.Duration
	owner    string
	hook     func(string)
	onDest   func(policy, region string, err error)
	onRetry  func(policy string, regions []string, err error)

	mu       sync.Mutex
	loops    map[string]*loop
	order    []string                 // policy names in file order
	stopping map[string]chan struct{} // done channels of stopped loops, by name
	ctx      context.Context          // set when Run starts
	stopped  bool                     // Run has returned: start nothing more
	wg       sync.WaitGroup
}

// New returns a reconciler with no policies; call SetPolicies and Run.
func New(p cloud.Provider, jobs Jobs, opts Options) *Reconciler {
	r := &Reconciler{
		cloud: p, jobs: jobs, clk: opts.Clock, log: opts.Logger, onRun: opts.OnRun, retryMin: opts.RetryMin,
		owner: opts.Owner, hook: opts.AfterList, onDest: opts.OnDestination, onRetry: opts.AfterRetry,
		loops: map[string]*loop{}, stopping: map[string]chan struct{}{},
	}
	if r.clk == nil {
		r.clk = clock.Real{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.owner == "" {
		r.owner = job.DefaultOwner
	}
	if r.retryMin <= 0 {
		r.retryMin = 30 * time.Second
	}
	return r
}

// SetPolicies replaces the loaded policies (hot reload): loops of removed
// policies stop, added ones start, and changed ones run at once with the
// new definition. Unchanged policies keep their schedule. f must be valid
// (policy.Parse); nil removes every policy.
func (r *Reconciler) SetPolicies(f *policy.File) {
	var ps []policy.Policy
	if f != nil {
		ps = f.Policies
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := map[string]bool{}
	r.order = r.order[:0]
	for i := range ps {
		p := ps[i] // a copy: the caller's File may change
		keep[p.Name] = true
		r.order = append(r.order, p.Name)
		if l := r.loops[p.Name]; l != nil {
			if l.replace(&p) {
				l.wakeUp()
			}
			continue
		}
		l := newLoop(&p, r.stopping[p.Name])
		delete(r.stopping, p.Name)
		r.loops[p.Name] = l
		if r.ctx != nil && !r.stopped {
			r.start(l)
		}
	}
	for name, l := range r.loops {
		if !keep[name] {
			l.stop()
			r.stopping[name] = l.done
			delete(r.loops, name)
		}
	}
}

// Run runs every policy's loop until ctx ends, then stops them and waits
// for runs in progress to return.
func (r *Reconciler) Run(ctx context.Context) {
	r.mu.Lock()
	if r.ctx != nil {
		r.mu.Unlock()
		panic("reconcile: Run called twice")
	}
	r.ctx = ctx
	for _, name := range r.order {
		r.start(r.loops[name])
	}
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	r.stopped = true
	for _, l := range r.loops {
		l.stop()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// start runs l's goroutine; r.mu is held.
func (r *Reconciler) start(l *loop) {
	ctx, cancel := context.WithCancel(r.ctx)
	l.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.runLoop(ctx, l)
	}()
}

// Trigger makes the policy run now (or right after the run in progress;
// triggers during a run collapse into one). It reports false for an unknown
// policy; a disabled policy does not run.
func (r *Reconciler) Trigger(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.loops[name]
	if l == nil {
		return false
	}
	l.wakeUp()
	return true
}

// Status returns the status of every loaded policy, in file order.
func (r *Reconciler) Status() []PolicyStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PolicyStatus, 0, len(r.order))
	for _, name := range r.order {
		out = append(out, r.loops[name].snapshot())
	}
	return out
}

// Plan is a dry run: it reads the cloud (DescribeImages only) and the jobs
// of the named policies (every enabled policy when names is empty) and
// returns what a run would do, changing nothing. An unknown name is an
// errdefs.ErrNotFound. A policy whose reads fail is left out and its error
// returned, joined with the others, along with the items of the rest; so
// is a destination whose listing failed transiently.
func (r *Reconciler) Plan(ctx context.Context, names []string) ([]policy.Item, error) {
	var ps []*policy.Policy
	r.mu.Lock()
	if len(names) == 0 {
		for _, name := range r.order {
			if p := r.loops[name].policy(); p.Enabled {
				ps = append(ps, p)
			}
		}
	} else {
		for _, name := range names {
			l := r.loops[name]
			if l == nil {
				r.mu.Unlock()
				return nil, fmt.Errorf("policy %q: %w", name, errdefs.ErrNotFound)
			}
			ps = append(ps, l.policy())
		}
	}
	r.mu.Unlock()
	var items []policy.Item
	var errs []error
	for _, p := range ps {
		obs, unlisted, err := r.observe(ctx, p, nil, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("policy %q: %w", p.Name, err))
			continue
		}
		// A destination that could not be listed is left out of the plan
		// (as a run would) and its error returned with the items.
		for _, d := range p.Destinations {
			if e := unlisted[d.Region]; e != nil {
				errs = append(errs, fmt.Errorf("policy %q: %w (not planned this time)", p.Name, e))
			}
		}
		items = append(items, p.Plan(obs)...)
	}
	return items, errors.Join(errs...)
}
