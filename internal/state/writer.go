package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// request is one Create or Update waiting for the writer.
type request struct {
	ctx    context.Context
	create []*job.Job // Create: clones of the caller's jobs
	id     string     // Update
	fn     func(*job.Job) error
	creq   *Request // CreateRequest
	// unlessCancelled: leave out created jobs whose pair has a tombstone.
	unlessCancelled bool
	skipped         []job.Tombstone

	// Set by the writer while applying; answered after the commit.
	cres   *RequestResult
	out    []*job.Job
	events []Event
	err    error
	done   chan struct{}
}

// errRetrySingly aborts a batch whose transaction may hold half of a
// request's writes; the writer then retries each request alone.
var errRetrySingly = errors.New("retry batch one request per transaction")

// errNoChange rolls back a transaction in which no request wrote anything.
var errNoChange = errors.New("no change")

// maxIDLen bounds job ids so that index keys stay small.
const maxIDLen = 256

// Create inserts new jobs atomically, each with its own revision, and
// returns once they are durable. Each job must have an id (at most 256
// bytes, no NUL byte) and a known state; CreateTime defaults to now. On
// success the caller's jobs get their Revision, CreateTime and UpdateTime
// as stored. ErrAlreadyExists, changing nothing, if any id exists.
func (d *DB) Create(ctx context.Context, jobs ...*job.Job) error {
	_, err := d.create(ctx, false, jobs)
	return err
}

// CreateUnlessCancelled is Create, except that jobs whose (policy, source,
// destination) holds a tombstone are left out (in the same transaction)
// and their tombstones returned. The jobs created get Revision etc. as
// with Create; those left out keep Revision 0.
func (d *DB) CreateUnlessCancelled(ctx context.Context, jobs ...*job.Job) ([]job.Tombstone, error) {
	return d.create(ctx, true, jobs)
}

func (d *DB) create(ctx context.Context, unlessCancelled bool, jobs []*job.Job) ([]job.Tombstone, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(jobs))
	clones := make([]*job.Job, len(jobs))
	for i, j := range jobs {
		if err := validateNew(j); err != nil {
			return nil, err
		}
		if seen[j.ID] {
			return nil, fmt.Errorf("job %q appears twice in one Create: %w", j.ID, errdefs.ErrInvalidArgument)
		}
		seen[j.ID] = true
		clones[i] = j.Clone()
	}
	r := &request{ctx: ctx, create: clones, unlessCancelled: unlessCancelled}
	if err := d.submit(r); err != nil {
		return nil, err
	}
	out := map[string]*job.Job{}
	for _, j := range r.out {
		out[j.ID] = j
	}
	for _, j := range jobs {
		if o := out[j.ID]; o != nil {
			j.Revision = o.Revision
			j.CreateTime = o.CreateTime
			j.UpdateTime = o.UpdateTime
		}
	}
	return r.skipped, nil
}

// Tombstones returns the tombstones of a policy.
func (d *DB) Tombstones(ctx context.Context, policy string) ([]job.Tombstone, error) {
	var out []job.Tombstone
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTombs)
		c := b.Cursor()
		prefix := append([]byte(policy), sep)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var t job.Tombstone
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("state file %s: tombstones/%q does not decode: %v: %w", d.path, k, err, errdefs.ErrDataLoss)
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

func tombKey(policy, src, dst string) []byte {
	return []byte(job.TombstoneKey(policy, src, dst))
}

// keepTombstone writes or deletes the tombstone of a policy job's pair as
// an Update changes the job (see Store.CreateUnlessCancelled).
func keepTombstone(tx *bolt.Tx, old, j *job.Job) error {
	put, lift := TombstoneChange(old, j)
	b := tx.Bucket(bucketTombs)
	k := tombKey(j.Policy, j.SourceImageID, j.DestinationRegion)
	switch {
	case put != nil:
		v, err := json.Marshal(put)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	case lift:
		v := b.Get(k)
		if v == nil {
			return nil
		}
		var t job.Tombstone
		if json.Unmarshal(v, &t) == nil && t.JobID != j.ID {
			return nil // another job's cancel
		}
		return b.Delete(k)
	}
	return nil
}

func validateNew(j *job.Job) error {
	if j == nil {
		return errdefs.Invalid("job", "is nil")
	}
	if err := validateID(j.ID); err != nil {
		return err
	}
	if err := validateState(j.ID, j.State); err != nil {
		return err
	}
	return validateIndexed(j)
}

// maxIndexedLen bounds the values that become part of index keys (bbolt
// keys are at most 32 KiB).
const maxIndexedLen = 1024

func validateIndexed(j *job.Job) error {
	for field, v := range map[string]string{"policy": j.Policy, "source_image_id": j.SourceImageID, "destination_region": j.DestinationRegion} {
		if strings.IndexByte(v, sep) >= 0 {
			return errdefs.Invalid(field, "job %q: contains a NUL byte", j.ID)
		}
		if len(v) > maxIndexedLen {
			return errdefs.Invalid(field, "job %q: is %d bytes, at most %d allowed", j.ID, len(v), maxIndexedLen)
		}
	}
	return nil
}

func validateID(id string) error {
	switch {
	case id == "":
		return errdefs.Invalid("id", "job id is empty")
	case len(id) > maxIDLen:
		return errdefs.Invalid("id", "job id is %d bytes, at most %d allowed", len(id), maxIDLen)
	case strings.IndexByte(id, sep) >= 0:
		return errdefs.Invalid("id", "job id %q contains a NUL byte", id)
	}
	return nil
}

func validateState(id string, s job.State) error {
	if s == job.StateUnspecified || s.Rank() == 0 {
		return errdefs.Invalid("state", "job %q: state %s is not a job state", id, s)
	}
	return nil
}

// Update reads job id, calls fn on a copy and, unless fn returns an error,
// stores the result with a new revision and returns it once durable. The
// store sets Revision and UpdateTime itself. A change of state that
// job.CheckTransition refuses fails with errdefs.ErrFailedPrecondition; a
// change of ID with errdefs.ErrInvalidArgument. If fn changes nothing,
// nothing is written and the stored job is returned as it is.
//
// fn runs on the writer goroutine, inside the write transaction: it must be
// quick and must not call the store. It runs once per commit attempt
// (again only when a storage error forces its batch to be retried).
func (d *DB) Update(ctx context.Context, id string, fn func(*job.Job) error) (*job.Job, error) {
	if err := validateID(id); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errdefs.Invalid("fn", "update function is nil")
	}
	r := &request{ctx: ctx, id: id, fn: fn}
	if err := d.submit(r); err != nil {
		return nil, err
	}
	return r.out[0], nil
}

// submit hands r to the writer and waits for its answer. Once the writer has
// taken r, submit waits for the commit even if ctx ends: the caller must
// learn whether the change is durable.
func (d *DB) submit(r *request) error {
	if d.closed.Load() {
		return d.errClosed()
	}
	if err := r.ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	select {
	case d.reqs <- r:
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-d.stop:
		return d.errClosed()
	}
	<-r.done
	return r.err
}

// writer is the one goroutine that writes: see "Writes: group commit" in
// doc.go.
func (d *DB) writer() {
	defer close(d.writerDone)
	batch := make([]*request, 0, d.opts.MaxBatchSize)
	for {
		select {
		case r := <-d.reqs:
			batch = d.gather(append(batch[:0], r))
			d.commit(batch)
			clear(batch)
		case <-d.stop:
			return
		}
	}
}

// gather adds the requests already waiting, and with MaxBatchDelay those
// that arrive within it, up to MaxBatchSize.
func (d *DB) gather(batch []*request) []*request {
drain:
	for len(batch) < d.opts.MaxBatchSize {
		select {
		case r := <-d.reqs:
			batch = append(batch, r)
		default:
			break drain
		}
	}
	if d.opts.MaxBatchDelay <= 0 || len(batch) >= d.opts.MaxBatchSize {
		return batch
	}
	t := time.NewTimer(d.opts.MaxBatchDelay)
	defer t.Stop()
	for len(batch) < d.opts.MaxBatchSize {
		select {
		case r := <-d.reqs:
			batch = append(batch, r)
		case <-t.C:
			return batch
		case <-d.stop:
			return batch
		}
	}
	return batch
}

// commit applies batch in one transaction, publishes its events and answers
// every request.
func (d *DB) commit(batch []*request) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	err := d.apply(live)
	if errors.Is(err, errRetrySingly) {
		for _, r := range live {
			r.out, r.events, r.err, r.cres = nil, nil, nil, nil
			if err := d.apply([]*request{r}); err != nil {
				r.err = err
				r.out, r.events, r.cres = nil, nil, nil
			}
			d.finish([]*request{r})
		}
		return
	}
	if err != nil {
		for _, r := range live {
			if r.err == nil {
				r.err = err
			}
			r.out, r.events, r.cres = nil, nil, nil
		}
	}
	d.finish(live)
}

// finish publishes the events of the committed requests and answers them.
func (d *DB) finish(reqs []*request) {
	var evs []Event
	for _, r := range reqs {
		evs = append(evs, r.events...)
	}
	if len(evs) > 0 {
		d.rev.Store(evs[len(evs)-1].Revision)
		d.publish(evs)
	}
	for _, r := range reqs {
		close(r.done)
	}
}

// apply runs reqs in one write transaction. A request that fails on its own
// (fn error, refused transition, unknown id) gets r.err and writes nothing;
// the others commit. The returned error is the transaction's.
func (d *DB) apply(reqs []*request) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("state file %s is corrupt (bbolt failed writing it: %v): %w", d.path, p, errdefs.ErrDataLoss)
		}
	}()
	err = d.bolt.Update(func(tx *bolt.Tx) error {
		// Job ids are time-ordered and revisions increase, so both buckets
		// grow at their end: pages split full instead of half full (bbolt
		// caches the bucket for the tx, so the setting holds throughout).
		tx.Bucket(bucketJobs).FillPercent = 0.9
		tx.Bucket(bucketEvents).FillPercent = 1.0
		rev, compacted, err := readRevisions(d.path, tx)
		if err != nil {
			return err
		}
		first := rev
		wrote := false // a request record written without a revision
		for _, r := range reqs {
			var storageErr error
			switch {
			case r.creq != nil:
				var w bool
				rev, w, r.err, storageErr = d.applyCreateRequest(tx, rev, r)
				wrote = wrote || w
			case r.create != nil:
				rev, r.err, storageErr = d.applyCreate(tx, rev, r)
			default:
				rev, r.err, storageErr = d.applyUpdate(tx, rev, r)
			}
			if storageErr != nil {
				if len(reqs) > 1 {
					return errRetrySingly
				}
				return storageErr
			}
		}
		if rev == first {
			if wrote {
				return nil
			}
			return errNoChange // roll back: committing would cost an fsync for nothing
		}
		if err := tx.Bucket(bucketMeta).Put(keyRevision, u64(uint64(rev))); err != nil {
			return err
		}
		return d.compact(tx, rev, compacted, rev-first)
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	if err != nil && !errors.Is(err, errRetrySingly) && !errors.Is(err, errdefs.ErrDataLoss) {
		err = fmt.Errorf("state file %s: commit failed: %v: %w", d.path, err, errdefs.ErrUnavailable)
	}
	return err
}

// compact deletes the oldest events beyond HistoryLimit: at most added +
// compactSlack of them, so one transaction's work stays bounded.
func (d *DB) compact(tx *bolt.Tx, rev, compacted, added int64) error {
	target := rev - int64(d.opts.HistoryLimit)
	if target <= compacted {
		return nil
	}
	if limit := compacted + added + compactSlack; target > limit {
		target = limit
	}
	c := tx.Bucket(bucketEvents).Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, revKey(target)) <= 0; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyCompactedRevision, u64(uint64(target)))
}

func (d *DB) now() time.Time { return d.opts.Clock.Now().UTC().Round(0) }

// applyCreate writes r's jobs. It returns the new revision, the request's
// own error, and a storage error that may have left partial writes.
func (d *DB) applyCreate(tx *bolt.Tx, rev int64, r *request) (int64, error, error) {
	jobs := tx.Bucket(bucketJobs)
	for _, j := range r.create {
		if jobs.Get([]byte(j.ID)) != nil {
			return rev, fmt.Errorf("job %q: %w", j.ID, errdefs.ErrAlreadyExists), nil
		}
	}
	list := r.create
	if r.unlessCancelled {
		r.skipped = nil
		tombs := tx.Bucket(bucketTombs)
		keep := r.create[:0:0]
		for _, j := range r.create {
			if j.Policy == "" {
				keep = append(keep, j)
				continue
			}
			v := tombs.Get(tombKey(j.Policy, j.SourceImageID, j.DestinationRegion))
			if v == nil {
				keep = append(keep, j)
				continue
			}
			var t job.Tombstone
			if err := json.Unmarshal(v, &t); err != nil {
				return rev, fmt.Errorf("state file %s: a tombstone of policy %q does not decode: %v: %w", d.path, j.Policy, err, errdefs.ErrDataLoss), nil
			}
			r.skipped = append(r.skipped, t)
		}
		list = keep
		if len(keep) == 0 {
			r.out = nil
			return rev, nil, nil
		}
	}
	now := d.now()
	encoded := make([][]byte, len(list))
	for i, j := range list {
		j.Revision = rev + int64(i) + 1
		if j.CreateTime.IsZero() {
			j.CreateTime = now
		}
		j.UpdateTime = now
		b, err := encodeJob(j)
		if err != nil {
			return rev, err, nil
		}
		encoded[i] = b
	}
	events := tx.Bucket(bucketEvents)
	for i, j := range list {
		if err := jobs.Put([]byte(j.ID), encoded[i]); err != nil {
			return rev, nil, err
		}
		if err := events.Put(revKey(j.Revision), encoded[i]); err != nil {
			return rev, nil, err
		}
		if err := updateIndexes(tx, nil, j); err != nil {
			return rev, nil, err
		}
		r.events = append(r.events, Event{Revision: j.Revision, Job: j.Clone()})
	}
	r.out = list
	return rev + int64(len(list)), nil, nil
}

// applyUpdate runs r.fn on the stored job and writes the result.
func (d *DB) applyUpdate(tx *bolt.Tx, rev int64, r *request) (int64, error, error) {
	raw := tx.Bucket(bucketJobs).Get([]byte(r.id))
	if raw == nil {
		return rev, fmt.Errorf("job %q: %w", r.id, errdefs.ErrNotFound), nil
	}
	old, err := decodeJob("jobs/"+r.id, raw)
	if err != nil {
		return rev, err, nil
	}
	j := old.Clone()
	if err := callFn(r.fn, j); err != nil {
		return rev, err, nil
	}
	if j.ID != old.ID {
		return rev, errdefs.Invalid("id", "update of job %q changed its id to %q", old.ID, j.ID), nil
	}
	if err := validateState(j.ID, j.State); err != nil {
		return rev, err, nil
	}
	if err := job.CheckTransition(old.State, j.State); err != nil {
		return rev, fmt.Errorf("job %q: %v: %w", j.ID, err, errdefs.ErrFailedPrecondition), nil
	}
	if err := validateIndexed(j); err != nil {
		return rev, err, nil
	}
	// A no-op update writes nothing: compare with the stored bytes.
	j.Revision, j.UpdateTime = old.Revision, old.UpdateTime
	b, err := encodeJob(j)
	if err != nil {
		return rev, err, nil
	}
	if bytes.Equal(b, raw) {
		r.out = []*job.Job{old}
		return rev, nil, nil
	}
	rev++
	j.Revision, j.UpdateTime = rev, d.now()
	if b, err = encodeJob(j); err != nil {
		return rev - 1, err, nil
	}
	if err := tx.Bucket(bucketJobs).Put([]byte(j.ID), b); err != nil {
		return rev, nil, err
	}
	if err := tx.Bucket(bucketEvents).Put(revKey(rev), b); err != nil {
		return rev, nil, err
	}
	if err := updateIndexes(tx, old, j); err != nil {
		return rev, nil, err
	}
	if err := keepTombstone(tx, old, j); err != nil {
		return rev, nil, err
	}
	r.events = []Event{{Revision: rev, Job: j.Clone()}}
	r.out = []*job.Job{j}
	return rev, nil, nil
}

// callFn runs an update function, turning a panic into an error for its
// caller alone.
func callFn(fn func(*job.Job) error, j *job.Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("update function for job %q panicked: %v: %w", j.ID, p, errdefs.ErrInternal)
		}
	}()
	return fn(j)
}
