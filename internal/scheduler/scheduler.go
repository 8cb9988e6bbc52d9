package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/ratelimit"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/workqueue"
)

// Scheduler runs copy jobs; see the package doc.
type Scheduler struct {
	opts  Options
	store state.Store
	cloud cloud.Provider
	log   *slog.Logger
	queue *workqueue.Queue[string]
	rl    *ratelimit.Limiter
	est   *estimator

	mu sync.Mutex
	// live holds the latest copy of every non-terminal job, so admission and
	// polling never scan the store.
	live map[string]*job.Job
	// started is when each copy was first seen Creating, for rate estimates.
	started map[string]time.Time
	// firstSeen is each copy's progress the first time a poll saw it
	// under way, to extrapolate its rate.
	firstSeen map[string]progressSample
	// endWin bounds when each copy at ECS ends, from every RemainTime the
	// polls read of it (see remainingOf).
	endWin map[string]endWindow
	// recovering holds jobs found SUBMITTING at start, or whose CopyImage
	// failed ambiguously: ECS may hold their copy already, so they are
	// looked up before CopyImage is sent again.
	recovering map[string]bool
	// ambiguous is when each job's CopyImage last failed in a way that may
	// hide a copy ECS accepted (a timeout or 5xx).
	ambiguous map[string]time.Time
	// cancelOK holds jobs whose CancelCopyImage ECS accepted.
	cancelOK map[string]bool
	// throttles counts each job's Throttling answers in a row: they grow
	// its backoff but, being flow control, never its retry budget.
	throttles map[string]int
	conflict  bool
	// fair holds each region's fair queue between policies.
	fair map[string]*fairQueue
	// nextPoll is when each region's next poll is due, if one is pending.
	nextPoll map[string]time.Time
	// forgotten holds the revision at which each job left live as
	// terminal, until the feed has passed it: an older event of the job
	// (the feed runs behind this process's own writes) must not bring it
	// back. See feed.go.
	forgotten map[string]int64
	// feedRev is the last revision the feed has handled; feedWindow the
	// revision up to which its events may be older than what live was
	// loaded from (Start, relist).
	feedRev, feedWindow int64
	// relists counts the feed's fresh starts from Active (tests read it).
	relists int
	// urgent holds jobs admitted ahead of the look-ahead because they
	// outrank what ECS held Waiting; a poll sees each start.
	urgent map[string]bool

	// leading is true from Start to Stop: only then does the scheduler
	// keep live, enqueue work and call the cloud. Otherwise it is passive.
	leading atomic.Bool
	ran     atomic.Bool // Start has run (a Scheduler starts once)
	// feedHook, when set (tests), runs before the feed handles an event.
	feedHook func(rev int64)

	wg         sync.WaitGroup
	cancel     context.CancelFunc
	feedCancel context.CancelFunc
	feedDone   chan struct{}
}

// ErrNotLeader is returned by the methods that need the cloud or the
// scheduler's running state (Prune, CopyGone, Adopt) on a scheduler that is
// not started: on a highly available follower, only the leader does them.
var ErrNotLeader = errdefs.New(errdefs.ErrFailedPrecondition,
	"this replica is not the leader: its scheduler is not running, so it only records requests in the store")

// New returns a scheduler over store and provider. Call Start to run it.
func New(store state.Store, provider cloud.Provider, opts Options) *Scheduler {
	opts.setDefaults()
	s := &Scheduler{
		opts:       opts,
		store:      store,
		cloud:      provider,
		log:        opts.Logger,
		live:       make(map[string]*job.Job),
		started:    make(map[string]time.Time),
		firstSeen:  make(map[string]progressSample),
		endWin:     make(map[string]endWindow),
		recovering: make(map[string]bool),
		ambiguous:  make(map[string]time.Time),
		cancelOK:   make(map[string]bool),
		throttles:  make(map[string]int),
		fair:       make(map[string]*fairQueue),
		nextPoll:   make(map[string]time.Time),
		forgotten:  make(map[string]int64),
		urgent:     make(map[string]bool),
		est:        newEstimator(),
		conflict:   opts.CopyConflict,
	}
	s.queue = workqueue.New[string](workqueue.Options[string]{
		Clock:   opts.Clock,
		Name:    "scheduler",
		Backoff: workqueue.Backoff{Base: opts.RetryBase, Max: opts.RetryMax, Jitter: 0.2},
	})
	s.rl = ratelimit.New(ratelimit.Options{Rate: opts.APIRate, Clock: opts.Clock})
	return s
}

const (
	keyJob      = "job/"
	keyPoll     = "poll/"
	keyDispatch = "dispatch/"
)

// Start loads every non-terminal job from the store, starts the workers and
// follows the store's change feed from the revision the jobs were loaded
// at (feed.go). It returns once every job is tracked again. A Scheduler
// starts at most once: to lead again, build a new one.
func (s *Scheduler) Start(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return fmt.Errorf("scheduler already started (it runs once; build a new one to lead again): %w", errdefs.ErrFailedPrecondition)
	}
	// Revision before Active: every change after the load is in the feed
	// from rev on; changes up to the end of the load may be in both, and
	// the revisions sort them out (see onEvent).
	rev := s.store.Revision()
	active, err := s.store.Active(ctx)
	if err != nil {
		s.ran.Store(false)
		return fmt.Errorf("load active jobs: %w", err)
	}
	window := s.store.Revision()
	regions := map[string]bool{}
	s.mu.Lock()
	for _, j := range active {
		s.live[j.ID] = j
		regions[j.DestinationRegion] = true
		if j.State == job.StateSubmitting {
			s.recovering[j.ID] = true
			s.ambiguous[j.ID] = s.opts.Clock.Now()
		}
	}
	s.feedRev, s.feedWindow = rev, window
	s.mu.Unlock()
	s.leading.Store(true)
	for _, j := range active {
		s.kick(j)
	}
	for r := range regions {
		s.queue.Add(keyDispatch + r)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		workqueue.Run(runCtx, s.queue, s.opts.Workers, s.process, func(key string, p any) {
			s.log.Error("panic in scheduler step", "key", key, "panic", fmt.Sprint(p))
		})
	}()
	feedCtx, feedCancel := context.WithCancel(context.Background())
	s.feedCancel, s.feedDone = feedCancel, make(chan struct{})
	go s.follow(feedCtx, rev)
	s.log.Info("scheduler started", "active_jobs", len(active), "revision", rev)
	return nil
}

// Stop stops following the feed and taking new steps, and waits for
// running ones (bounded by ctx). Jobs stay in the store as they are; the
// next leader's Start resumes them. After Stop the scheduler is passive.
// Call Stop on a scheduler that was never started too: it releases the
// work queue's goroutine.
func (s *Scheduler) Stop(ctx context.Context) {
	s.leading.Store(false)
	if s.feedCancel != nil {
		s.feedCancel()
		<-s.feedDone
	}
	s.queue.ShutDownWithDrain(ctx)
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// kick schedules the next step of j according to its state.
func (s *Scheduler) kick(j *job.Job) {
	switch j.State {
	case job.StateQueued:
		if d := j.NextAttemptTime.Sub(s.opts.Clock.Now()); d > 0 {
			s.queue.AddAfter(keyDispatch+j.DestinationRegion, d)
		} else {
			s.queue.Add(keyDispatch + j.DestinationRegion)
		}
	case job.StateSubmitting:
		if d := j.NextAttemptTime.Sub(s.opts.Clock.Now()); d > 0 {
			s.queue.AddAfter(keyJob+j.ID, d)
		} else {
			s.queue.Add(keyJob + j.ID)
		}
	case job.StateWaiting, job.StateCopying:
		if j.CancelRequested || j.CloudStatus == cloud.StatusAvailable {
			s.queue.Add(keyJob + j.ID)
		} else {
			s.schedulePoll(j.DestinationRegion, 0)
		}
	case job.StateCancelling:
		s.queue.Add(keyJob + j.ID)
	}
}

// process runs one step. An error (the store refused or failed a write) is
// logged and the key retried with backoff by the queue.
func (s *Scheduler) process(ctx context.Context, key string) error {
	var err error
	switch {
	case strings.HasPrefix(key, keyJob):
		err = s.step(ctx, strings.TrimPrefix(key, keyJob))
	case strings.HasPrefix(key, keyPoll):
		err = s.poll(ctx, strings.TrimPrefix(key, keyPoll))
	case strings.HasPrefix(key, keyDispatch):
		err = s.dispatch(ctx, strings.TrimPrefix(key, keyDispatch))
	}
	if err != nil && ctx.Err() == nil {
		s.log.Error("scheduler step failed; retrying with backoff", "key", key, "err", err.Error())
	}
	return err
}

// update changes a job durably and, while leading, keeps the live view in
// step. fn sees the job as the store has it, whoever wrote it last.
func (s *Scheduler) update(ctx context.Context, id string, fn func(*job.Job) error) (*job.Job, error) {
	var (
		from job.State
		seen int64 // the revision fn saw
	)
	j, err := s.store.Update(ctx, id, func(j *job.Job) error {
		from, seen = j.State, j.Revision
		return fn(j)
	})
	if err != nil {
		return nil, err
	}
	if s.leading.Load() {
		prev, applied := s.track(j)
		if applied && (prev == nil || seen > prev.Revision) {
			// Another writer (an API call on a follower, say) changed the
			// job since this process last saw it, and fn built on that
			// change: enqueue what it needs, as the feed would have.
			s.react(prev, j)
		}
		if from.InCloud() && !j.State.InCloud() {
			s.freed(j)
		}
	}
	if from != j.State {
		// A failure is a WARN with its code: an operator filtering on level
		// sees it, and knows why without looking the job up.
		level, attrs := slog.LevelInfo, []any{"job", j.ID, "from", from.String(), "to", j.State.String(),
			"image", j.SourceImageID, "region", j.DestinationRegion, "copy", j.DestinationImageID, "cloud_status", j.CloudStatus}
		if j.State == job.StateFailed {
			level = slog.LevelWarn
			if j.Error != nil {
				attrs = append(attrs, "code", j.Error.Code, "error", j.Error.Message, "request_id", j.Error.RequestID)
			}
		}
		s.log.Log(ctx, level, "job transition", attrs...)
		if s.opts.Observer != nil {
			s.opts.Observer.Transition(from.String(), j.State.String())
		}
	}
	return j, nil
}

// freed wakes admission after j left its copy slot. With the copy-conflict
// rule, a freed source image may unblock every region.
func (s *Scheduler) freed(j *job.Job) {
	s.mu.Lock()
	conflict := s.conflict
	regions := map[string]bool{j.DestinationRegion: true}
	if conflict {
		for _, o := range s.live {
			if o.State == job.StateQueued {
				regions[o.DestinationRegion] = true
			}
		}
	}
	s.mu.Unlock()
	for r := range regions {
		s.queue.Add(keyDispatch + r)
	}
}

// track records j, a job this process wrote, in live, unless live already
// holds it or a later revision: concurrent steps may track out of order,
// and the feed may have handled j's revision first (then it has reacted to
// it). It returns the job live held before, and whether j was recorded.
func (s *Scheduler) track(j *job.Job) (prev *job.Job, applied bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.Revision <= s.feedRev {
		return s.live[j.ID], false
	}
	return s.applyLocked(j)
}

// applyLocked records j in live (removes it if terminal) unless live, or
// forgotten, already holds its revision or a later one.
func (s *Scheduler) applyLocked(j *job.Job) (prev *job.Job, applied bool) {
	prev = s.live[j.ID]
	if prev != nil && prev.Revision >= j.Revision {
		return prev, false
	}
	if r, ok := s.forgotten[j.ID]; ok && prev == nil && r >= j.Revision {
		return nil, false
	}
	if j.State.Terminal() {
		s.forgetLocked(j.ID)
		if j.Revision > s.feedRev {
			s.forgotten[j.ID] = j.Revision
		}
		return prev, true
	}
	if j.State == job.StateQueued {
		delete(s.started, j.ID)
		delete(s.firstSeen, j.ID)
		delete(s.endWin, j.ID)
	}
	if j.State != job.StateSubmitting && j.State != job.StateWaiting {
		delete(s.urgent, j.ID)
	}
	s.live[j.ID] = j
	delete(s.forgotten, j.ID)
	return prev, true
}

// forgetLocked drops a job that is terminal (or gone) from live and from
// the process's per-job state.
func (s *Scheduler) forgetLocked(id string) {
	delete(s.live, id)
	delete(s.started, id)
	delete(s.firstSeen, id)
	delete(s.endWin, id)
	delete(s.recovering, id)
	delete(s.ambiguous, id)
	delete(s.cancelOK, id)
	delete(s.throttles, id)
	delete(s.urgent, id)
}

func (s *Scheduler) get(id string) *job.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[id]
}

// Submit stores new jobs durably and, while leading, schedules them (a
// passive scheduler stores them only: the leader's feed picks them up). A
// job with a DestinationImageID and state WAITING or COPYING adopts an
// existing copy.
func (s *Scheduler) Submit(ctx context.Context, jobs ...*job.Job) error {
	s.prepare(jobs)
	if err := s.store.Create(ctx, jobs...); err != nil {
		return err
	}
	s.created(jobs)
	return nil
}

// created tracks and schedules jobs this process has just stored, while
// leading. The feed brings them too; this only saves its latency.
func (s *Scheduler) created(jobs []*job.Job) {
	if !s.leading.Load() {
		return
	}
	for _, j := range jobs {
		if _, applied := s.track(j.Clone()); applied {
			s.kick(j)
		}
	}
}

// prepare fills in what a new job needs before it is stored.
func (s *Scheduler) prepare(jobs []*job.Job) {
	now := s.opts.Clock.Now()
	for _, j := range jobs {
		if j.ID == "" {
			j.ID = job.NewID(now)
		}
		if j.State == job.StateUnspecified {
			j.State = job.StateQueued
		}
		if j.CreateTime.IsZero() {
			j.CreateTime = now
		}
		j.UpdateTime = now
	}
}

// SubmitRequest stores the jobs of an API request through
// Store.CreateRequest (an id replays, Reuse answers with existing jobs) and
// schedules the jobs it created, as Submit does. Defaults are filled as by
// Submit.
func (s *Scheduler) SubmitRequest(ctx context.Context, r *state.Request) (*state.RequestResult, error) {
	s.prepare(r.Jobs)
	res, err := s.store.CreateRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	s.created(res.Created)
	return res, nil
}

// Cancel asks for jobs to be cancelled. Queued jobs are cancelled at once;
// jobs with a copy in ECS become CANCELLING and, while leading,
// CancelCopyImage is sent (a passive scheduler only records the cancel:
// the leader's feed carries it out). Finished jobs give
// ErrFailedPrecondition; nothing is changed then.
func (s *Scheduler) Cancel(ctx context.Context, ids []string) ([]*job.Job, error) {
	for _, id := range ids {
		j, err := s.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.State.Terminal() {
			return nil, fmt.Errorf("job %s is already %s: %w", id, j.State, errdefs.ErrFailedPrecondition)
		}
	}
	out := make([]*job.Job, 0, len(ids))
	now := s.opts.Clock.Now()
	by := job.Actor(ctx)
	for _, id := range ids {
		j, err := s.update(ctx, id, func(j *job.Job) error { return cancelJob(j, by, now) })
		if err != nil {
			return out, err
		}
		out = append(out, j)
		if s.leading.Load() {
			if !j.State.Terminal() {
				s.queue.Add(keyJob + j.ID)
			}
			s.queue.Add(keyDispatch + j.DestinationRegion)
		}
	}
	return out, nil
}

// cancelJob records a cancel on j (in a store transaction).
func cancelJob(j *job.Job, by string, now time.Time) error {
	if !j.State.Terminal() && !j.CancelRequested {
		// Durable, and (for a policy job) the store's tombstone of the
		// pair, in the same transaction.
		j.CancelledBy, j.CancelTime = by, now
	}
	switch {
	case j.State.Terminal():
		return fmt.Errorf("job %s is already %s: %w", j.ID, j.State, errdefs.ErrFailedPrecondition)
	case j.State == job.StateQueued:
		j.CancelRequested = true
		j.State = job.StateCancelled
		j.FinishTime = now
	case j.State == job.StateWaiting || j.State == job.StateCopying:
		// CANCELLING at once, whoever records it: no poll or post-copy
		// step of the leader can then end the job SUCCEEDED or recopy it.
		j.State = job.StateCancelling
		j.CancelRequested = true
		j.NextAttemptTime = time.Time{} // a post-copy retry's wait is not the cancel's
	default: // SUBMITTING or CANCELLING: the step in progress sees the flag.
		j.CancelRequested = true
	}
	return nil
}

// Retry starts a new attempt of failed or cancelled jobs: QUEUED, and
// scheduled while leading (the leader's feed picks up a passive retry).
func (s *Scheduler) Retry(ctx context.Context, ids []string) ([]*job.Job, error) {
	for _, id := range ids {
		j, err := s.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.State != job.StateFailed && j.State != job.StateCancelled {
			return nil, fmt.Errorf("job %s is %s; only FAILED or CANCELLED jobs can be retried: %w", id, j.State, errdefs.ErrFailedPrecondition)
		}
	}
	var out []*job.Job
	for _, id := range ids {
		j, err := s.update(ctx, id, func(j *job.Job) error {
			if j.State != job.StateFailed && j.State != job.StateCancelled {
				return fmt.Errorf("job %s is %s: %w", j.ID, j.State, errdefs.ErrFailedPrecondition)
			}
			// No copy was recorded: an earlier attempt may still have left
			// one in ECS (an ambiguous CopyImage). Look for it first.
			lookup := j.DestinationImageID == "" && j.Attempts > 0
			resetForNewAttempt(j)
			j.AttemptBase = j.Attempts // a fresh budget; tokens stay unique
			j.LookupFirst = lookup
			j.CancelledBy, j.CancelTime = "", time.Time{}
			return nil
		})
		if err != nil {
			return out, err
		}
		out = append(out, j)
		if s.leading.Load() {
			s.kick(j)
		}
	}
	return out, nil
}

// resetForNewAttempt puts j back in the queue for a fresh copy.
func resetForNewAttempt(j *job.Job) {
	j.State = job.StateQueued
	j.DestinationImageID = ""
	j.CloudStatus = ""
	j.ProgressPercent = 0
	j.Remaining = 0
	j.ClientToken = ""
	j.CancelRequested = false
	j.Adopted = false // the next copy is ours
	j.AdoptionReason = ""
	j.Retries = 0
	j.FinishTime = time.Time{}
	j.SubmitTime = time.Time{}
	for i := range j.PostCopy {
		j.PostCopy[i].Done = false
		j.PostCopy[i].Error = ""
	}
}

// PolicyJobs returns the jobs of a policy: all non-terminal ones and the
// latest terminal one per source image and region.
func (s *Scheduler) PolicyJobs(ctx context.Context, policy string) ([]*job.Job, error) {
	var out []*job.Job
	seen := map[string]bool{}
	token := ""
	for {
		jobs, next, _, err := s.store.List(ctx, state.Filter{Policy: policy}, 1000, token)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs { // newest first
			k := j.SourceImageID + "\x00" + j.DestinationRegion
			if !j.State.Terminal() {
				out = append(out, j)
				seen[k] = true
				continue
			}
			if !seen[k] {
				seen[k] = true
				out = append(out, j)
			}
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// RegionLoad reports queued and in-flight jobs per region.
func (s *Scheduler) RegionLoad() map[string][2]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][2]int{}
	for _, j := range s.live {
		v := out[j.DestinationRegion]
		if j.State == job.StateQueued {
			v[0]++
		} else {
			v[1]++
		}
		out[j.DestinationRegion] = v
	}
	return out
}

// OldestQueued returns the creation time of the oldest queued job.
func (s *Scheduler) OldestQueued() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, j := range s.live {
		if j.State == job.StateQueued && (t.IsZero() || j.CreateTime.Before(t)) {
			t = j.CreateTime
		}
	}
	return t, !t.IsZero()
}

// call runs one ECS call under the action's rate limit and timeout and
// feeds the outcome back into the limiter.
func (s *Scheduler) call(ctx context.Context, action string, fn func(context.Context) error) error {
	if err := s.rl.Wait(ctx, action); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	err := fn(cctx)
	switch {
	case err == nil:
		s.rl.OnSuccess(action)
	case cloud.ClassOf(err) == cloud.ClassThrottled:
		s.rl.OnThrottle(action)
		if s.opts.Observer != nil {
			s.opts.Observer.Throttled(action)
		}
	}
	if err != nil && ctx.Err() == nil {
		var ce *cloud.Error
		if errors.As(err, &ce) {
			s.log.Warn("ECS call failed", append([]any{"action", action, "code", ce.Code, "request_id", ce.RequestID, "region", ce.Region, "class", ce.Class.String()}, jobAttrs(ctx)...)...)
		} else {
			s.log.Warn("ECS call failed", append([]any{"action", action, "err", err.Error()}, jobAttrs(ctx)...)...)
		}
	}
	return err
}

// Count is how many live jobs share a state, region and policy.
type Count struct {
	State  job.State
	Region string
	Policy string
	Count  int
}

// LiveCounts counts the non-terminal jobs by state, region and policy.
func (s *Scheduler) LiveCounts() []Count {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := map[Count]int{}
	for _, j := range s.live {
		idx[Count{State: j.State, Region: j.DestinationRegion, Policy: j.Policy}]++
	}
	out := make([]Count, 0, len(idx))
	for k, n := range idx {
		k.Count = n
		out = append(out, k)
	}
	return out
}
