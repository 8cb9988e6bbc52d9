// Package scheduler runs copy jobs: it admits queued jobs into each
// destination region's copy slots, submits them with CopyImage, follows them
// with batched DescribeImages polls until they are terminal, applies
// post-copy actions, and carries out cancels.
//
// # Design
//
// Everything the scheduler does is a step on one key of a work queue with
// client-go semantics (internal/workqueue): "job/<id>" submits or cancels one
// job, "poll/<region>" refreshes every in-flight copy of a region with one
// DescribeImages call per 100 ids, "dispatch/<region>" admits queued jobs
// into free slots. A key is never processed twice at once, so each region's
// admission and polling are serial while regions and jobs proceed in
// parallel on a bounded pool of workers.
//
// Driven by the store: the store, not a method call, says what there is
// to do. A started scheduler follows the store's change feed (Store.Watch
// through state.Follow, feed.go) from the revision it loaded its live jobs
// at, so every change to a job, made by this process or by any other
// writer of the same store, updates live and enqueues the keys it needs:
// dispatch/<region> for a QUEUED job, job/<id> for SUBMITTING, CANCELLING,
// a new CancelRequested or post-copy work, a poll soon for a copy newly in
// ECS; a terminal job leaves live. It is level-triggered: an event only
// names a changed job, handlers re-read it (from live, and from the store
// in every update) and do what its state needs now, so a duplicate or late
// event is harmless. Revisions order the feed's events and this process's
// own writes; after ErrOutOfRange (history compacted by RemoveFinished) or
// any other feed failure, the scheduler reads Active again and follows
// from that revision. The API methods of a started scheduler still
// enqueue their job's next key at once, which only saves the feed's
// latency.
//
// Passive: a Scheduler that is built but not started (an HA follower;
// any scheduler after Stop) serves what the API and a policy run call by
// writing the store only, with the same validation and transitions:
// Submit, SubmitRequest, SubmitPolicy (QUEUED jobs), Cancel (QUEUED ends
// CANCELLED; a job with a copy in ECS becomes CANCELLING with
// CancelRequested, and the leader's scheduler cancels the copy; SUBMITTING
// and CANCELLING only get the flag), Retry (QUEUED), LiftCancels, and the
// reads Job, PolicyJobs, Tombstones. It makes no cloud call, holds no
// live jobs and enqueues nothing; the leader's feed picks every write up.
// Prune, CopyGone and Adopt need the cloud and return ErrNotLeader
// (errdefs.ErrFailedPrecondition). Estimate answers from the copy rates
// this process has learned (a follower has only the prior), Slots from
// the options; RegionLoad, LiveCounts, OldestQueued and Overdue describe
// this process's live jobs, so they are empty on a follower. Paced works
// on either side, under this process's own rate limits. A Scheduler starts
// at most once: to lead again, build a new one (Start on a stopped one is
// a FailedPrecondition). Stop it either way: it owns a goroutine.
//
// Durable before acting: every step first writes the job's next state to the
// store (which returns only after fsync), then calls the cloud. A job in
// SUBMITTING has its ClientToken on disk before CopyImage is sent; after a
// crash (or a timeout or 5xx that may hide an accepted copy) the job is
// looked up in the destination by its lineage tags (replicatord:job-id and
// replicatord:attempt) and, only if ECS has no copy, submitted again with
// the same token. Either way no second copy is made.
//
// Admission: ECS runs `slots` copies per destination region and holds the
// rest Waiting, first come, first served, with no priorities. The scheduler
// replays that queue (forecast.go: each running copy ends when ECS's
// RemainTime says, refined by its progress rate; each waiting one starts as
// a slot frees and takes the route's learned copy time; ECS's RemainTime is
// whole seconds, so every reading of a copy bounds its end to a second and
// the scheduler keeps the intersection of them all, remainingOf in poll.go)
// and submits a copy (dispatch, wantMore) when a slot is idle, or when
// ECS's queue would run dry within LookaheadTime, at most Lookahead beyond
// the slots; where copies fail, ECS also holds one Waiting copy more per
// copy expected to fail (spares), since a failure frees its slot at a point
// no forecast foresees. The expected share is the region's or, where more,
// the whole fleet's; until ten copies ended in a region it holds one spare
// even with no failure seen. When the next copy may go only later, a timer wakes
// admission then: the queue is topped up as the forecast says copies start,
// with no poll needed to decide it, so polls are left to see copies end.
// Everything else stays QUEUED here, where it is cheap to reorder or
// cancel. The queue order is: ad-hoc copies before policy backfill, then
// priority, then fairness between policies (the policy with the fewest
// copies in the region goes first), then the longest estimated copy first
// (LPT, which keeps the makespan close to the lower bound), then age. A
// queued copy that outranks one ECS holds Waiting is submitted at once
// (urgent): it waits behind those, at most LookaheadTime, and a poll looks
// when it is expected to start.
//
// Rate limits: every ECS call waits on a token bucket per action shared by
// all workers (internal/ratelimit); a Throttling answer lowers that action's
// rate multiplicatively and successes raise it additively (AIMD).
//
// Ownership: every call that changes or removes an image (CancelCopyImage,
// DeleteImage, sharing, image family) goes through mutate (guard.go), which
// sends it only if the store records the image as the copy of the job it
// is for; tags alone never suffice, and adopted copies (found by tags with
// a new state file) are refused unless a policy allows it. Copies carry
// replicatord:owner (Options.Owner); lookups and adoption ignore other
// owners.
//
// Cancels and failures end clean: a CANCELLING job is carried through
// until its copy is gone (CancelCopyImage, or once the copy is Available,
// unsharing and DeleteImage), retried with capped backoff outside the
// retry budget (cancelWait). A job that fails with a copy in ECS goes
// CANCELLING without CancelRequested and ends FAILED once the copy is
// gone. So every copy the scheduler made is tracked by a non-terminal job
// until it is kept (SUCCEEDED) or gone; a retried job first looks for a
// copy an earlier attempt left (LookupFirst).
//
// # The job's life
//
// The legal transitions are in internal/job (job.CheckTransition); this is
// where each is made. Every handler writes the next state with s.update
// (a store transaction whose closure re-checks the state and returns
// errSkip when another step, or another writer, got there first) before
// the cloud call that depends on it. Steps run on the work queue's keys:
// "job/<id>" (step), "poll/<region>" (poll, then observe per copy),
// "dispatch/<region>" (dispatch); the API's calls (Cancel, Retry,
// Prune...) run in the caller, on the leader or passively on a follower,
// and the leader's feed (onEvent → react, feed.go) enqueues what a change
// made elsewhere needs.
//
//	state        event                            handler (file)                  next
//	(new)        Submit, SubmitRequest            prepare (scheduler.go)          QUEUED; WAITING/COPYING for a
//	                                                                              copy a policy adopts
//	             SubmitPolicy                     SubmitPolicy (guard.go)         QUEUED, unless tombstoned
//	             a state file lost or replaced    Adopt (adopt.go)                WAITING/COPYING/SUCCEEDED, Adopted
//	QUEUED       a free slot, retry time passed   dispatch → next, admit          SUBMITTING (new attempt, token)
//	             Cancel                           Cancel (scheduler.go)           CANCELLED
//	SUBMITTING   its key                          step → submit (step.go)         CopyImage sent
//	             restart, ambiguous answer, or    lookupBeforeSubmit, findCopy    the copy found: WAITING; none and
//	             cancel asked                                                     cancelled: CANCELLED; else send
//	             CopyImage accepted               accepted                        WAITING (CANCELLING if cancelled)
//	             throttled, 5xx, timeout          submitRefused → retryLater      SUBMITTING later; FAILED when the
//	                                                                              retries are used up
//	             quota, copy conflict             submitRefused                   QUEUED (not an attempt)
//	             any other error                  submitRefused → fail            FAILED
//	             Cancel                           Cancel (flag only)              the lookup above
//	WAITING,     poll: Waiting or Creating        observeRunning (poll.go)        WAITING or COPYING
//	COPYING      poll: Available                  observeAvailable                SUCCEEDED (succeeded), or COPYING
//	                                                                              at 100% and step → finish
//	             post-copy action fails           finish → retryLater, fail       later; or FAILED via CANCELLING
//	             poll: CreateFailed, UnAvailable  observeFailed → recopy          copy deleted; QUEUED (next
//	                                                                              attempt) or FAILED
//	             poll: not listed after grace     observeMissing → recopy         QUEUED or FAILED
//	             Cancel                           Cancel; step → cancelCopy       CANCELLING
//	             CancelRequested set elsewhere    feed → step                     CANCELLING (succeeded and recopy
//	                                                                              skip such a job)
//	CANCELLING   its key                          step → cancelCopy (step.go)     CancelCopyImage sent; the copy
//	                                                                              ended: removeCopy (DeleteImage)
//	             poll: the copy ended             observeCancelling               its key: removeCopy
//	             poll: not listed                 observeCancelling → cancelled   CANCELLED; FAILED if it was the
//	                                                                              cleanup of a failure (failWith)
//	             any error, CancelNotSupported    cancelWait (guard.go)           CANCELLING, retried, no budget
//	SUCCEEDED    retention removes the copy       Prune (guard.go)                PRUNED
//	             the copy is gone from ECS        CopyGone (guard.go)             PRUNED
//	FAILED,      Retry                            Retry (scheduler.go)            QUEUED, a fresh retry budget
//	CANCELLED    policy names it again            LiftCancels (guard.go)          stays; its tombstone is lifted
//	any live     Start (a restart)                Start → kick                    its next step; SUBMITTING looks
//	                                                                              up its copy first
//	any          a change by another writer       feed: onEvent → react (feed.go) its next step, as above; the feed
//	                                                                              makes no transition itself
//
// A failure while the job's own copy may be in ECS goes through failWith
// (step.go): CANCELLING without CancelRequested, then FAILED once the copy
// is gone (cancelled). recopy fails a job directly only when its copy is
// already gone (vanished, or failed and deleted).
//
// Polling (poll.go, planPoll): a poll is worth its call when something has
// ended, so the next one comes after an expected end. While jobs are
// queued here it comes at the latest that still sees the first end within
// seven eighths of DetectLag (the eighth left is for the forecast's
// error): one call sees every end up to then, and ECS's queue, topped up
// by admission's timer, keeps the slots busy meanwhile. With nothing
// queued here the region's end is near, and any of its copies may be the
// fleet's last: the poll comes a tenth of DetectLag after the latest end
// within that limit (copies that start together end together, and a poll
// on the dot of a cluster's forecast sees only part of it), so that the
// region's last copy is seen a tenth of DetectLag after its end, with
// the ends just before it in the same call. While jobs are queued, admission's timer
// keeps ECS's queue from running dry, so its dry time bounds the poll
// only where that cannot work: in a region whose copies fail (earlier, by
// a quarter of LookaheadTime: a failed copy frees its slot before its
// expected end), or with Lookahead copies already beyond the slots. A
// poll also comes at the expected start of an urgent copy, and where
// copies fail, just after the first end once nothing is queued here (so
// that a failed copy's next attempt goes at once). A copy that starts at
// once on a route with no finished copy is looked at within PollMin, to
// learn its time left from ECS rather than from the prior; while copies
// admitted with it are still being sent, the look waits for the last of
// them (a tenth of LookaheadTime at most), so one call sees them all.
// PollMin and PollMax bound the wait. Every poll plans its successor when
// it ends, from the live view as it is then, so a copy accepted while it
// ran is planned for too. The updates of copies still Waiting or Creating (progress, time
// left) act on nothing: a poll makes them concurrently and the store
// commits them in one transaction; every other outcome is written on its
// own before what depends on it.
package scheduler
