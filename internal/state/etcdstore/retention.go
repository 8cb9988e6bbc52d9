package etcdstore

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// RemoveFinished removes up to limit expired jobs that no plan needs, in
// one transaction conditional on each being unchanged, and raises
// meta/compacted to the newest removed revision (see the package doc).
func (s *Store) RemoveFinished(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	if limit < 1 || limit > state.MaxRemoveBatch {
		return 0, errdefs.Invalid("limit", "must be 1..%d, got %d", state.MaxRemoveBatch, limit)
	}
	for {
		if err := s.check(ctx); err != nil {
			return 0, err
		}
		n, done, err := s.tryRemove(ctx, cutoff, limit)
		if err != nil || done {
			return n, err
		}
	}
}

type candidate struct {
	j   *job.Job
	mod int64
}

// tryRemove is one attempt; done is false after a conflict.
func (s *Store) tryRemove(ctx context.Context, cutoff time.Time, limit int) (int, bool, error) {
	_, compacted, at, err := s.meta(ctx)
	if err != nil {
		return 0, false, err
	}
	all, err := s.cli.Get(ctx, s.p+"jobs/", clientv3.WithPrefix(), clientv3.WithRev(at))
	if err != nil {
		return 0, false, s.etcdErr(ctx, "read jobs", err)
	}
	tombs, err := s.cli.Get(ctx, s.p+"tombstones/", clientv3.WithPrefix(), clientv3.WithRev(at))
	if err != nil {
		return 0, false, s.etcdErr(ctx, "read tombstones", err)
	}
	named := map[string]bool{} // job ids that tombstones name
	for _, kv := range tombs.Kvs {
		var t job.Tombstone
		if json.Unmarshal(kv.Value, &t) == nil {
			named[t.JobID] = true
		}
	}
	byImage := map[string][]*job.Job{}
	var jobs []candidate
	for _, kv := range all.Kvs {
		j, err := s.decode(kv)
		if err != nil {
			s.reportCorrupt(strings.TrimPrefix(string(kv.Key), s.p), err)
			continue
		}
		byImage[j.SourceImageID] = append(byImage[j.SourceImageID], j)
		jobs = append(jobs, candidate{j, kv.ModRevision})
	}
	var (
		gone   = map[string]bool{}
		cmps   []clientv3.Cmp
		ops    []clientv3.Op
		newest = compacted
	)
	for _, c := range jobs {
		if len(gone) == limit {
			break
		}
		j := c.j
		if !state.Expired(j, cutoff) || state.KeptForPlan(j, byImage[j.SourceImageID], named[j.ID]) {
			continue
		}
		gone[j.ID] = true
		newest = max(newest, c.mod)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.jobKey(j.ID)), "=", c.mod))
		ops = append(ops, clientv3.OpDelete(s.jobKey(j.ID)), clientv3.OpDelete(s.activeKey(j.ID)),
			clientv3.OpDelete(s.imageKey(j.SourceImageID, j.ID)))
	}
	if len(gone) == 0 {
		return 0, true, nil
	}
	reqs, err := s.cli.Get(ctx, s.p+"requests/", clientv3.WithPrefix(), clientv3.WithRev(at))
	if err != nil {
		return 0, false, s.etcdErr(ctx, "read requests", err)
	}
	for _, kv := range reqs.Kvs {
		rec, err := state.DecodeRequest(strings.TrimPrefix(string(kv.Key), s.p), kv.Value)
		if err != nil {
			continue // kept: it names nothing we can read
		}
		for _, id := range rec.JobIDs {
			if gone[id] {
				ops = append(ops, clientv3.OpDelete(string(kv.Key)))
				break
			}
		}
	}
	// A request recorded since the read could name a job removed here.
	cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.p+"requests/"), "<", at+1).WithPrefix())
	ops = append(ops, clientv3.OpPut(s.metaCompactedKey(), strconv.FormatInt(newest, 10)))
	resp, err := s.commit(ctx, cmps, ops)
	if err != nil {
		return 0, false, s.etcdErr(ctx, "remove finished jobs", err)
	}
	if !resp.Succeeded {
		return 0, false, nil
	}
	return len(gone), true, nil
}
