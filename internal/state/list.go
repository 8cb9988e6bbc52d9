package state

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

const (
	defaultListLimit = 100
	maxListLimit     = 1000
	// tokenVersion starts every page token, so the format can change.
	tokenVersion = 'c'
)

// List returns jobs matching f, newest first (job ids are time-ordered). A
// limit <= 0 means 100 and a limit above 1000 is clamped to 1000. The page
// token is opaque (it encodes the last id returned); since new jobs sort
// before every existing one, pages stay stable under concurrent inserts.
// A token that List did not return fails with errdefs.ErrInvalidArgument.
//
// List reads through the most selective index it can: the ids, else the
// source image, else the active index when every wanted state is
// non-terminal, else policy, destination region, state, and last a scan of
// all jobs. The remaining filters are applied to each candidate.
func (d *DB) List(ctx context.Context, f Filter, limit int, pageToken string) ([]*job.Job, string, int64, error) {
	if limit <= 0 {
		limit = defaultListLimit
	}
	if limit > maxListLimit {
		limit = maxListLimit
	}
	before, err := decodeToken(pageToken)
	if err != nil {
		return nil, "", 0, err
	}
	var (
		out []*job.Job
		rev int64
	)
	err = d.view(func(tx *bolt.Tx) error {
		var err error
		if rev, _, err = readRevisions(d.path, tx); err != nil {
			return err
		}
		next, fromIndex := candidates(tx, f, before)
		jobs := tx.Bucket(bucketJobs)
		for n := 0; len(out) <= limit; n++ {
			if n%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			id, ok := next()
			if !ok {
				return nil
			}
			v := jobs.Get([]byte(id))
			if v == nil {
				if fromIndex {
					return fmt.Errorf("state file %s: an index names job %q, which does not exist: %w", d.path, id, errdefs.ErrDataLoss)
				}
				continue // an id from the filter that does not exist
			}
			j, err := decodeJob("jobs/"+id, v)
			if err != nil {
				d.reportCorrupt("jobs/"+id, err)
				continue
			}
			if f.Match(j) {
				out = append(out, j)
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", 0, err
	}
	var token string
	if len(out) > limit {
		out = out[:limit]
		token = encodeToken(out[limit-1].ID)
	}
	return out, token, rev, nil
}

func encodeToken(id string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{tokenVersion}, id...))
}

func decodeToken(t string) (string, error) {
	if t == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(b) < 2 || b[0] != tokenVersion || validateID(string(b[1:])) != nil {
		return "", errdefs.Invalid("page_token", "is not a token returned by List")
	}
	return string(b[1:]), nil
}

// candidates returns an iterator over the ids that may match f, newest
// first, below before when it is not empty, and whether they come from an
// index (so a missing job is corruption, not a miss).
func candidates(tx *bolt.Tx, f Filter, before string) (func() (string, bool), bool) {
	idx := tx.Bucket(bucketIndex)
	switch {
	case len(f.IDs) > 0:
		ids := slices.Clone(f.IDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		slices.Reverse(ids)
		i := 0
		return func() (string, bool) {
			for i < len(ids) {
				id := ids[i]
				i++
				if before == "" || id < before {
					return id, true
				}
			}
			return "", false
		}, false
	case f.SourceImageID != "":
		return descIDs(idx.Bucket(indexImage), pairKey(f.SourceImageID, ""), before), true
	case len(f.States) > 0 && allActive(f.States):
		return descIDs(idx.Bucket(indexActive), nil, before), true
	case f.Policy != "":
		return descIDs(idx.Bucket(indexPolicy), pairKey(f.Policy, ""), before), true
	case f.DestinationRegion != "":
		return descIDs(idx.Bucket(indexRegion), pairKey(f.DestinationRegion, ""), before), true
	case len(f.States) > 0:
		var its []func() (string, bool)
		seen := map[job.State]bool{}
		for _, s := range f.States {
			if !seen[s] {
				seen[s] = true
				its = append(its, descIDs(idx.Bucket(indexState), pairKey(strconv.Itoa(int(s)), ""), before))
			}
		}
		return mergeDesc(its), true
	default:
		return descIDs(tx.Bucket(bucketJobs), nil, before), false
	}
}

func allActive(states []job.State) bool {
	for _, s := range states {
		if s.Terminal() {
			return false
		}
	}
	return true
}

// descIDs iterates the keys of b that start with prefix, in descending
// order, returning what follows the prefix; only those below before when it
// is not empty. Returned strings are copies, valid after the transaction.
func descIDs(b *bolt.Bucket, prefix []byte, before string) func() (string, bool) {
	c := b.Cursor()
	var k []byte
	started := false
	return func() (string, bool) {
		if !started {
			started = true
			var seek []byte
			switch {
			case before != "":
				seek = append(slices.Clone(prefix), before...)
			case len(prefix) > 0:
				// prefix ends in the NUL separator: prefix with that byte
				// raised to 1 is just past every key with the prefix.
				seek = slices.Clone(prefix)
				seek[len(seek)-1]++
			}
			if seek == nil {
				k, _ = c.Last()
			} else if k, _ = c.Seek(seek); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		} else if k != nil {
			k, _ = c.Prev()
		}
		if k == nil || !bytes.HasPrefix(k, prefix) {
			k = nil
			return "", false
		}
		return string(k[len(prefix):]), true
	}
}

// mergeDesc merges descending iterators into one descending iterator.
func mergeDesc(its []func() (string, bool)) func() (string, bool) {
	if len(its) == 1 {
		return its[0]
	}
	heads := make([]string, len(its))
	ok := make([]bool, len(its))
	for i, it := range its {
		heads[i], ok[i] = it()
	}
	return func() (string, bool) {
		best := -1
		for i := range its {
			if ok[i] && (best < 0 || heads[i] > heads[best]) {
				best = i
			}
		}
		if best < 0 {
			return "", false
		}
		id := heads[best]
		heads[best], ok[best] = its[best]()
		return id, true
	}
}

// Active returns every non-terminal job, oldest first, read through
// index/active only (at restart this touches ~1% of the file). Records
// that do not decode are reported and skipped.
func (d *DB) Active(ctx context.Context) ([]*job.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*job.Job
	err := d.view(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		c := tx.Bucket(bucketIndex).Bucket(indexActive).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			v := jobs.Get(k)
			if v == nil {
				return fmt.Errorf("state file %s: index/active names job %q, which does not exist: %w", d.path, k, errdefs.ErrDataLoss)
			}
			j, err := decodeJob("jobs/"+string(k), v)
			if err != nil {
				// The scheduler cannot run a job it cannot read; the
				// record is reported, the other jobs go on.
				d.reportCorrupt("jobs/"+string(k), err)
				continue
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}
