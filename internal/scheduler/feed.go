package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// The change feed. A started scheduler follows the store's Watch from the
// revision it loaded its live jobs at, so that a change made by any writer
// of the store (a follower's API, a policy run, an operator's tool) is
// seen and acted on, not only the changes this process makes. It is
// level-triggered: an event only says "job id changed"; what to do comes
// from the job as live then holds it, and every handler re-reads the job
// (from live, or from the store in its update) before acting. So an event
// that comes twice or late changes nothing:
//
//   - revisions order everything. live holds each job with the revision it
//     was read at, and an event (or an own write, tracked out of order by
//     concurrent steps) at or below it is dropped; a job that left live as
//     terminal is remembered in forgotten until the feed has passed that
//     revision, so an older event cannot bring it back.
//   - react enqueues what a change needs, by comparing the job before and
//     after. A job new to live gets its next step by state, as at Start
//     (dispatch/<region> for QUEUED, job/<id> for SUBMITTING, CANCELLING,
//     a cancel or post-copy work, a poll soon for a copy in ECS); a known
//     job gets what another writer's change needs: job/<id> for a new
//     CancelRequested, dispatch/<region> for a return to QUEUED (Retry)
//     or a freed slot; a terminal job leaves live. Transitions that only
//     this process's steps make (admission, an accepted copy, progress)
//     are not reacted to: the step that made one enqueued its next key
//     already, and may still be setting up what that step reads. The feed
//     usually finds live up to date (the step tracked its own write) and
//     does nothing; an update whose function saw another writer's change
//     reacts as the feed would (update).
//   - Start and relist read Active after taking the revision, so events up
//     to the end of the read (feedWindow) may be older than what they
//     loaded: an event there for a job live does not hold is checked
//     against the store (Get) before it counts.
//   - the store's watch resumes by itself when it falls behind (Follow);
//     when the history it needs was compacted (ErrOutOfRange, after
//     RemoveFinished) or the watch fails otherwise, relist reads Active
//     again, brings live up to date with it and follows from its revision.

// follow runs the feed until ctx ends.
func (s *Scheduler) follow(ctx context.Context, from int64) {
	defer close(s.feedDone)
	wait := 100 * time.Millisecond
	for {
		err := state.Follow(ctx, s.store, state.FollowOptions{
			From: from,
			Resumed: func(from int64, reason error) {
				s.log.Debug("scheduler feed resumed", "from_revision", from, "reason", reason.Error())
			},
		}, func(rev int64, j *job.Job) error { return s.onEvent(ctx, rev, j) })
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errdefs.ErrOutOfRange) {
			s.log.Info("scheduler feed: the changes it had not seen were compacted; reading the active jobs again", "err", err.Error())
		} else {
			s.log.Warn("scheduler feed failed; reading the active jobs again", "err", errString(err))
		}
		// Re-read until it works: while it does not, live may miss a
		// change, so nothing else matters more.
		for {
			from, err = s.relist(ctx)
			if err == nil || ctx.Err() != nil {
				break
			}
			s.log.Error("scheduler feed: cannot read the active jobs; retrying", "err", err.Error(), "retry_in", wait.String())
			t := time.NewTimer(wait) // real time: the feed is the store's, not the jobs'
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, 5*time.Second)
		}
		if ctx.Err() != nil {
			return
		}
		wait = 100 * time.Millisecond
	}
}

// onEvent applies one change from the feed to live and enqueues what it
// needs. An error (the store could not be read) ends the Follow; follow
// then relists.
func (s *Scheduler) onEvent(ctx context.Context, rev int64, j *job.Job) error {
	if s.feedHook != nil {
		s.feedHook(rev)
	}
	s.mu.Lock()
	have, known := s.live[j.ID]
	_, gone := s.forgotten[j.ID]
	stale := rev <= s.feedWindow && !known && !gone && !j.State.Terminal()
	// The usual case: this process's own write, tracked already. Or an
	// event the feed has passed (never sent twice; guarded all the same).
	// Below feedRev, not at it: the jobs of one Create share its revision
	// on etcd (one transaction), so an event at feedRev may be another
	// job's than the one handled; that one is known at rev already.
	seen := known && have.Revision >= rev || rev < s.feedRev
	s.mu.Unlock()
	cur := j
	switch {
	case seen, !known && j.State.Terminal():
		cur = nil // nothing to do: live is up to date, or never held the job
	case stale:
		// Possibly older than the Active read that left the job out (it
		// was terminal then): the store says what the job is now.
		got, err := s.store.Get(ctx, j.ID)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			cur = nil // removed by retention since: it was terminal
		case err != nil:
			return err
		default:
			cur = got
		}
	default:
		cur = j.Clone() // events are shared with other watchers
	}
	var (
		prev    *job.Job
		applied bool
	)
	s.mu.Lock()
	if cur != nil {
		prev, applied = s.applyLocked(cur)
	}
	s.mu.Unlock()
	if applied {
		s.react(prev, cur)
	}
	s.mu.Lock()
	if r, ok := s.forgotten[j.ID]; ok && r <= rev {
		delete(s.forgotten, j.ID) // every later event is above r
	}
	s.feedRev = max(s.feedRev, rev)
	s.mu.Unlock()
	return nil
}

// relist brings live up to date with the store after the feed lost its
// place: it reads Active (after taking the revision to follow from), applies
// every job newer than live holds, and checks the live jobs Active left out
// (finished meanwhile, perhaps removed, or created after the read).
func (s *Scheduler) relist(ctx context.Context) (int64, error) {
	rev := s.store.Revision()
	active, err := s.store.Active(ctx)
	if err != nil {
		return 0, err
	}
	window := s.store.Revision()
	listed := make(map[string]bool, len(active))
	for _, j := range active {
		listed[j.ID] = true
		s.apply(j)
	}
	s.mu.Lock()
	var missing []string
	for id := range s.live {
		if !listed[id] {
			missing = append(missing, id)
		}
	}
	s.mu.Unlock()
	for _, id := range missing {
		j, err := s.store.Get(ctx, id)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			s.removed(id)
		case err != nil:
			return 0, err
		default:
			s.apply(j)
		}
	}
	s.mu.Lock()
	// Events up to rev are not coming: what forgotten guards against is
	// now guarded by the revisions of what Active and Get returned.
	for id, r := range s.forgotten {
		if r <= rev {
			delete(s.forgotten, id)
		}
	}
	s.feedRev, s.feedWindow = max(s.feedRev, rev), window
	s.relists++
	s.mu.Unlock()
	s.log.Info("scheduler feed: active jobs read again", "active_jobs", len(active), "revision", rev)
	return rev, nil
}

// apply records a job read from the store in live, and reacts to it.
func (s *Scheduler) apply(j *job.Job) {
	s.mu.Lock()
	prev, applied := s.applyLocked(j)
	s.mu.Unlock()
	if applied {
		s.react(prev, j)
	}
}

// removed drops a live job that the store no longer has (retention removes
// only terminal jobs: it finished while the feed was not looking).
func (s *Scheduler) removed(id string) {
	s.mu.Lock()
	prev := s.live[id]
	s.forgetLocked(id)
	s.mu.Unlock()
	if prev != nil && prev.State.InCloud() {
		s.freed(prev)
	}
}

// react enqueues what the change of a job from prev (nil: not in live) to j
// needs, for a change this process's steps did not make themselves (they
// enqueue their own next key, and may still be setting up what that step
// reads): a job new to live gets its next step as at Start; a known one
// gets one for what another writer may do to it (the API's Cancel and
// Retry): a cancel newly asked, a return to QUEUED, a copy slot freed.
// Enqueuing more than needed is harmless: each handler re-reads the job
// and does only what its state needs now.
func (s *Scheduler) react(prev, j *job.Job) {
	if prev == nil {
		s.kickNew(j)
		return
	}
	if prev.State.InCloud() && !j.State.InCloud() {
		s.freed(j)
	}
	switch {
	case j.State.Terminal():
	case j.State == job.StateQueued:
		if prev.State != job.StateQueued || j.CancelRequested != prev.CancelRequested || !prev.NextAttemptTime.Equal(j.NextAttemptTime) {
			s.kick(j)
		}
	case j.CancelRequested && !prev.CancelRequested:
		s.queue.Add(keyJob + j.ID) // a cancel does not wait out a backoff
	}
}

// kickNew schedules the next step of a job that live did not hold: as
// kick, except that a copy in ECS waits for the region's next poll
// (pollSoon) instead of forcing one.
func (s *Scheduler) kickNew(j *job.Job) {
	switch j.State {
	case job.StateWaiting, job.StateCopying:
		if j.CancelRequested || j.CloudStatus == cloud.StatusAvailable {
			s.queue.Add(keyJob + j.ID)
		} else {
			s.pollSoon(j.DestinationRegion)
		}
	case job.StateSubmitting:
		if j.CancelRequested {
			s.queue.Add(keyJob + j.ID)
		} else {
			s.kick(j)
		}
	default:
		s.kick(j) // QUEUED, CANCELLING; nothing for a terminal job
	}
}

// feedCaughtUp reports whether the feed has handled every change committed
// so far (tests wait for it).
func (s *Scheduler) feedCaughtUp() bool {
	rev := s.store.Revision()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.feedRev >= rev
}
