package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// MaxRemoveBatch caps the jobs one RemoveFinished call removes, so that its
// write transaction, which the writer waits behind, stays short.
const MaxRemoveBatch = 1000

// RemoveFinished removes at most limit (1..MaxRemoveBatch) terminal jobs
// that have not changed since before cutoff, with their index entries, and
// compacts the history up to the newest revision among them (see
// "Retention" in doc.go). It returns how many it removed; fewer than limit
// means none is left.
func (d *DB) RemoveFinished(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	if limit < 1 || limit > MaxRemoveBatch {
		return 0, errdefs.Invalid("limit", "must be 1..%d, got %d", MaxRemoveBatch, limit)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Candidates are found in a read transaction, so the write transaction
	// only re-checks and deletes them.
	var ids []string
	err := d.view(func(tx *bolt.Tx) error {
		var err error
		ids, err = expiredIDs(tx, cutoff, limit)
		return err
	})
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return d.remove(ids, cutoff)
}

// expired reports whether j is old enough to be removed at cutoff;
// removable adds the rule for policy jobs.
func expired(j *job.Job, cutoff time.Time) bool {
	return j.State.Terminal() && j.UpdateTime.Before(cutoff)
}

// removable reports whether the expired job j may go. Jobs without a
// policy always may. A policy's plan reads two of its jobs for each source
// image and destination region (policy.Policy.Plan): the newest, to know
// that the user cancelled that copy or that ECS refused it for good, and
// the newest SUCCEEDED, to know that the copy in the region is its own
// (without it the copy would be adopted again as a new job). So a policy
// job that is CANCELLED or FAILED stays until a newer job of its policy,
// source and region exists, and one that SUCCEEDED until a newer SUCCEEDED
// one does. Any other terminal state has nothing the plan reads. Since the
// newest ones never go, what made an older job removable stays true after
// it is removed.
func removable(tx *bolt.Tx, j *job.Job) (bool, error) {
	if j.Policy == "" {
		return true, nil
	}
	var same []*job.Job
	jobs := tx.Bucket(bucketJobs)
	prefix := pairKey(j.SourceImageID, "")
	c := tx.Bucket(bucketIndex).Bucket(indexImage).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		if id == j.ID {
			continue
		}
		raw := jobs.Get([]byte(id))
		if raw == nil {
			continue
		}
		o, err := decodeJob("jobs/"+id, raw)
		if err != nil {
			return false, err
		}
		same = append(same, o)
	}
	return !KeptForPlan(j, same, namedByTombstone(tx, j)), nil
}

// namedByTombstone reports whether j is the job of its pair's cancel
// tombstone: the tombstone is lifted through an Update of that job (see
// keepTombstone), so the job stays while the tombstone does.
func namedByTombstone(tx *bolt.Tx, j *job.Job) bool {
	v := tx.Bucket(bucketTombs).Get(tombKey(j.Policy, j.SourceImageID, j.DestinationRegion))
	if v == nil {
		return false
	}
	var t job.Tombstone
	return json.Unmarshal(v, &t) != nil || t.JobID == j.ID // undecodable: keep, Check reports it
}

// newerJob orders jobs as the policy's plan does, by CreateTime, with the
// (time-ordered) id breaking ties.
func newerJob(a, b *job.Job) bool {
	if !a.CreateTime.Equal(b.CreateTime) {
		return a.CreateTime.After(b.CreateTime)
	}
	return a.ID > b.ID
}

// expiredIDs walks the state index of each terminal state.
func expiredIDs(tx *bolt.Tx, cutoff time.Time, limit int) ([]string, error) {
	var ids []string
	jobs := tx.Bucket(bucketJobs)
	c := tx.Bucket(bucketIndex).Bucket(indexState).Cursor()
	for _, s := range terminalStates() {
		prefix := pairKey(strconv.Itoa(int(s)), "")
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := string(k[len(prefix):])
			raw := jobs.Get([]byte(id))
			if raw == nil {
				continue // Check reports the stale index entry
			}
			j, err := decodeJob("jobs/"+id, raw)
			if err != nil {
				return nil, err
			}
			if !expired(j, cutoff) {
				continue
			}
			ok, err := removable(tx, j)
			if err != nil {
				return nil, err
			}
			if ok {
				ids = append(ids, id)
				if len(ids) == limit {
					return ids, nil
				}
			}
		}
	}
	return ids, nil
}

func terminalStates() []job.State {
	var out []job.State
	for s := job.State(1); s < 64; s++ {
		if s.Rank() != 0 && s.Terminal() {
			out = append(out, s)
		}
	}
	return out
}

// remove deletes the jobs of ids that are still expired at cutoff in one
// write transaction. It runs beside the writer goroutine rather than
// through it: a removal takes no revision and publishes no event, and bbolt
// orders its transaction with the writer's.
func (d *DB) remove(ids []string, cutoff time.Time) (n int, err error) {
	if d.closed.Load() {
		return 0, d.errClosed()
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			n, err = 0, fmt.Errorf("state file %s is corrupt (bbolt failed writing it: %v): %w", d.path, p, errdefs.ErrDataLoss)
		}
	}()
	err = d.bolt.Update(func(tx *bolt.Tx) error {
		n = 0
		var newest int64
		gone := map[string]bool{}
		for _, id := range ids {
			raw := tx.Bucket(bucketJobs).Get([]byte(id))
			if raw == nil {
				continue
			}
			j, err := decodeJob("jobs/"+id, raw)
			if err != nil {
				return err
			}
			if !expired(j, cutoff) {
				continue // changed since the read
			}
			if ok, err := removable(tx, j); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			if err := deleteJob(tx, j); err != nil {
				return err
			}
			n++
			gone[j.ID] = true
			newest = max(newest, j.Revision)
		}
		if n == 0 {
			return nil
		}
		if err := deleteRequestsNaming(tx, gone); err != nil {
			return err
		}
		return compactThrough(d.path, tx, newest)
	})
	switch {
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return 0, d.errClosed()
	case err != nil && !errors.Is(err, errdefs.ErrDataLoss):
		return 0, fmt.Errorf("state file %s: removing finished jobs failed: %v: %w", d.path, err, errdefs.ErrUnavailable)
	}
	return n, err
}

func deleteJob(tx *bolt.Tx, j *job.Job) error {
	if err := tx.Bucket(bucketJobs).Delete([]byte(j.ID)); err != nil {
		return err
	}
	idx := tx.Bucket(bucketIndex)
	for i, key := range indexKeys(j) {
		if key != nil {
			if err := idx.Bucket(indexNames[i]).Delete(key); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteRequestsNaming deletes the request records that name a removed job,
// so that every record names jobs that exist (Check). The request id is
// then free again: a client repeating it gets a new answer, as for a
// request whose jobs were never made. Records have no index by job, so
// this reads the whole bucket, once per batch.
func deleteRequestsNaming(tx *bolt.Tx, gone map[string]bool) error {
	var stale [][]byte
	err := tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
		rec, err := decodeRequest("requests/"+string(k), v)
		if err != nil {
			return nil // a corrupt record is Check's to report, not ours to drop
		}
		for _, id := range rec.JobIDs {
			if gone[id] {
				stale = append(stale, bytes.Clone(k))
				break
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketRequests)
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// compactThrough deletes every event up to revision through and records it
// as compacted, so that no retained event holds a removed job.
func compactThrough(path string, tx *bolt.Tx, through int64) error {
	_, compacted, err := readRevisions(path, tx)
	if err != nil || through <= compacted {
		return err
	}
	c := tx.Bucket(bucketEvents).Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, revKey(through)) <= 0; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyCompactedRevision, u64(uint64(through)))
}

// RetentionOptions configure RunRetention.
type RetentionOptions struct {
	// Retention is how long a finished job is kept after its last change;
	// zero keeps every job forever (RunRetention returns at once).
	Retention time.Duration
	// Interval between sweeps; DefaultRetentionInterval when zero.
	Interval time.Duration
	// Clock; clock.Real when nil.
	Clock clock.Clock
	// Logger gets one line per sweep that removed something, and errors.
	Logger *slog.Logger
	// Removed, when set, is told how many jobs each batch removed.
	Removed func(n int)
}

// DefaultRetentionInterval is how often RunRetention sweeps by default.
const DefaultRetentionInterval = time.Hour

// Remover is the part of a store RunRetention needs; DB implements it, as
// another backend would.
type Remover interface {
	RemoveFinished(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// RunRetention removes finished jobs older than o.Retention from s: once
// at start, then every o.Interval, in batches of MaxRemoveBatch, until ctx
// ends. A failed sweep is logged and tried again at the next interval.
func RunRetention(ctx context.Context, s Remover, o RetentionOptions) {
	if o.Retention <= 0 {
		return
	}
	if o.Interval <= 0 {
		o.Interval = DefaultRetentionInterval
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for {
		Sweep(ctx, s, o)
		t := o.Clock.NewTimer(o.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// Sweep is one pass of RunRetention; it returns how many jobs it removed.
func Sweep(ctx context.Context, s Remover, o RetentionOptions) int {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cutoff := o.Clock.Now().Add(-o.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := s.RemoveFinished(ctx, cutoff, MaxRemoveBatch)
		total += n
		if n > 0 && o.Removed != nil {
			o.Removed(n)
		}
		if err != nil {
			if ctx.Err() == nil {
				o.Logger.Error("removing finished jobs failed; trying again at the next sweep", "error", err.Error())
			}
			break
		}
		if n < MaxRemoveBatch {
			break
		}
	}
	if total > 0 {
		o.Logger.Info("removed finished jobs past their retention", "jobs", total, "retention", o.Retention.String(), "finished_before", cutoff.UTC().Format(time.RFC3339))
	}
	return total
}
