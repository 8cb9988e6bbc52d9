package state

import (
	"context"
	"time"

	"github.com/replicatord/replicatord/internal/job"
)

// Store is the durable home of jobs. It is deliberately narrow (jobs by id,
// a few indexed queries, a revisioned change feed) so that an etcd-backed
// store could replace bbolt for a highly available deployment.
// internal/state/statetest is this contract as a test suite: every
// backend runs it.
//
// Every method that changes a job returns only after the change is durable
// (fsynced by bbolt; committed by the quorum in etcd), so callers may act
// on it: "durable before acting".
type Store interface {
	// Create inserts new jobs atomically, with revisions above every
	// earlier change, in the order given (bbolt gives each job its own
	// revision; a backend that commits them in one transaction, as etcd
	// does, may give them one). It fails with errdefs.ErrAlreadyExists,
	// changing nothing, if any id exists. On success it sets Revision,
	// UpdateTime and (when zero) CreateTime on the caller's jobs, as stored.
	Create(ctx context.Context, jobs ...*job.Job) error
	// CreateUnlessCancelled is Create for policy jobs: a job whose
	// (policy, source image, destination region) holds a tombstone is left
	// out, checked in the same transaction as the insert, and its
	// tombstone returned. The store keeps tombstones itself: Update writes
	// one when it first sets CancelRequested on a job with a policy
	// (from CancelledBy and CancelTime), and deletes it when that job is
	// retried (CANCELLED or FAILED back to QUEUED) or its CancelLifted is
	// first set, in the same transaction. Unlike Create it need not be
	// atomic across jobs (each pair stands alone): a backend whose
	// transactions are bounded (etcd's --max-txn-ops) stores the jobs in
	// several, and an error may leave the earlier ones stored.
	CreateUnlessCancelled(ctx context.Context, jobs ...*job.Job) (skipped []job.Tombstone, err error)
	// Tombstones returns the tombstones of a policy.
	Tombstones(ctx context.Context, policy string) ([]job.Tombstone, error)
	// Update reads job id, calls fn on a copy and, unless fn returns an
	// error (returned unchanged) or changes nothing, stores the result with
	// a new revision and returns it. The store sets Revision and UpdateTime
	// and refuses, with errdefs.ErrFailedPrecondition, a state change that
	// job.CheckTransition forbids. fn may run more than once and must not
	// have side effects nor call the store (concurrent updates are grouped
	// into one transaction, and fn runs inside it). ErrNotFound for an
	// unknown id.
	Update(ctx context.Context, id string, fn func(*job.Job) error) (*job.Job, error)
	// CreateRequest creates the jobs of an API request and records its id,
	// atomically: a recorded id with the same fingerprint returns the
	// recorded jobs (Replayed) and creates nothing, one with another
	// fingerprint fails with ErrAlreadyExists; jobs that r.Reuse accepts
	// an existing job for are not created. See Request.
	CreateRequest(ctx context.Context, r *Request) (*RequestResult, error)
	// GetRequest returns a recorded request id with its jobs, or
	// ErrNotFound.
	GetRequest(ctx context.Context, id string) (*RequestResult, error)
	// Get returns one job, or ErrNotFound (ErrDataLoss for a record that
	// does not decode).
	Get(ctx context.Context, id string) (*job.Job, error)
	// List returns jobs matching f, newest first, at most limit (1..1000),
	// from pageToken; it also returns the token of the next page ("" at the
	// end) and the revision the list was read at. Records that do not
	// decode are reported (Options.OnCorrupt) and skipped, as they are by
	// Active and Watch: one bad record must not hide every other job.
	List(ctx context.Context, f Filter, limit int, pageToken string) (jobs []*job.Job, next string, rev int64, err error)
	// Active returns every non-terminal job, read through an index.
	Active(ctx context.Context) ([]*job.Job, error)
	// Revision is the revision of the last committed change. A backend
	// that must ask another process for it (etcd) answers its last good
	// read when that process does not answer, so the value may be behind:
	// check a client's revision against the store with Watch, not with it.
	Revision() int64
	// Watch streams every change with a revision above fromRevision: first
	// the retained history, then live changes. It fails with
	// errdefs.ErrOutOfRange when fromRevision is older than the oldest
	// retained change (compacted) or newer than the current revision; the
	// client then lists again and watches from the list's revision.
	Watch(ctx context.Context, fromRevision int64) (Watcher, error)
	// RemoveFinished removes at most limit (1..MaxRemoveBatch) terminal
	// jobs whose UpdateTime is before cutoff, with everything that refers
	// to them, and returns how many it removed (fewer than limit: none is
	// left). It keeps the policy jobs a plan reads: per policy, source
	// image and destination region, the newest job while it is CANCELLED
	// or FAILED, the newest SUCCEEDED one, and the job a cancel tombstone
	// names. A removal is not a change: it takes no revision and sends no
	// event. Instead the history is compacted up to the newest revision of
	// a removed job, so that no retained event holds one and a watcher
	// resuming from before it gets ErrOutOfRange and lists again, without
	// the removed jobs. RunRetention calls it on a timer.
	RemoveFinished(ctx context.Context, cutoff time.Time, limit int) (int, error)
	Close() error
}

// Filter selects jobs; zero fields match everything.
type Filter struct {
	IDs               []string
	States            []job.State
	Policy            string
	SourceImageID     string
	DestinationRegion string
}

// Match reports whether j passes the filter.
func (f Filter) Match(j *job.Job) bool {
	if len(f.IDs) > 0 && !contains(f.IDs, j.ID) {
		return false
	}
	if len(f.States) > 0 {
		ok := false
		for _, s := range f.States {
			if s == j.State {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if f.Policy != "" && f.Policy != j.Policy {
		return false
	}
	if f.SourceImageID != "" && f.SourceImageID != j.SourceImageID {
		return false
	}
	if f.DestinationRegion != "" && f.DestinationRegion != j.DestinationRegion {
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Event is one committed change.
type Event struct {
	Revision int64
	// Job is the job after the change. It may be shared with other
	// watchers: treat it as read-only (Clone it to change it).
	Job *job.Job
}

// Watcher delivers events in revision order.
type Watcher interface {
	// Events is closed when the watch ends: its context is done, Close is
	// called, the store closes (Err: errdefs.ErrUnavailable), or the watcher
	// fell too far behind (Err: errdefs.ErrAborted, and the client resumes
	// from its last revision; errdefs.ErrOutOfRange if that was compacted).
	Events() <-chan Event
	// Err says why Events was closed; nil after Close or a done context.
	Err() error
	// Close ends the watch and returns once Events is closed.
	Close()
}
