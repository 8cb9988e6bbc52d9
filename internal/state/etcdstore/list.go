package etcdstore

import (
	"context"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// listBatch is how many records one range read of List returns.
const listBatch = 500

// List returns jobs matching f, newest first, every read at the etcd
// revision of its first, so a page is one consistent view.
func (s *Store) List(ctx context.Context, f state.Filter, limit int, pageToken string) ([]*job.Job, string, int64, error) {
	limit = state.ListLimit(limit)
	before, err := state.DecodePageToken(pageToken)
	if err != nil {
		return nil, "", 0, err
	}
	if err := s.check(ctx); err != nil {
		return nil, "", 0, err
	}
	rev, _, at, err := s.meta(ctx)
	if err != nil {
		return nil, "", 0, err
	}
	var out []*job.Job
	if len(f.IDs) > 0 {
		out, err = s.listIDs(ctx, f, limit, before, at)
	} else {
		out, err = s.listScan(ctx, f, limit, before, at)
	}
	if err != nil {
		return nil, "", 0, err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = state.EncodePageToken(out[limit-1].ID)
	}
	return out, next, rev, nil
}

// listIDs reads the filter's ids, newest first, up to limit+1 matches.
func (s *Store) listIDs(ctx context.Context, f state.Filter, limit int, before string, at int64) ([]*job.Job, error) {
	ids := append([]string(nil), f.IDs...)
	sortDesc(ids)
	var out []*job.Job
	for i, id := range ids {
		if (i > 0 && ids[i-1] == id) || (before != "" && id >= before) {
			continue
		}
		resp, err := s.cli.Get(ctx, s.jobKey(id), clientv3.WithRev(at))
		if err != nil {
			return nil, s.etcdErr(ctx, "list", err)
		}
		if len(resp.Kvs) == 0 {
			continue
		}
		j, err := s.decode(resp.Kvs[0])
		if err != nil {
			s.reportCorrupt(strings.TrimPrefix(string(resp.Kvs[0].Key), s.p), err)
			continue
		}
		if f.Match(j) {
			if out = append(out, j); len(out) > limit {
				break
			}
		}
	}
	return out, nil
}

// listScan reads jobs/ newest first (by key, ids being time-ordered) from
// before, up to limit+1 matches.
func (s *Store) listScan(ctx context.Context, f state.Filter, limit int, before string, at int64) ([]*job.Job, error) {
	start := s.p + "jobs/"
	end := clientv3.GetPrefixRangeEnd(start)
	if before != "" {
		end = s.jobKey(before)
	}
	var out []*job.Job
	for {
		resp, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithRev(at),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(listBatch))
		if err != nil {
			return nil, s.etcdErr(ctx, "list", err)
		}
		for _, kv := range resp.Kvs {
			j, err := s.decode(kv)
			if err != nil {
				s.reportCorrupt(strings.TrimPrefix(string(kv.Key), s.p), err)
				continue
			}
			if f.Match(j) {
				if out = append(out, j); len(out) > limit {
					return out, nil
				}
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		end = string(resp.Kvs[len(resp.Kvs)-1].Key)
	}
}

// Active returns every non-terminal job, oldest first, through active/.
func (s *Store) Active(ctx context.Context) ([]*job.Job, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	idx, err := s.cli.Get(ctx, s.p+"active/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, s.etcdErr(ctx, "active", err)
	}
	at := idx.Header.Revision
	var out []*job.Job
	for _, kv := range idx.Kvs {
		id := strings.TrimPrefix(string(kv.Key), s.p+"active/")
		resp, err := s.cli.Get(ctx, s.jobKey(id), clientv3.WithRev(at))
		if err != nil {
			return nil, s.etcdErr(ctx, "active", err)
		}
		if len(resp.Kvs) == 0 {
			continue // cannot happen: the index is written with the job
		}
		j, err := s.decode(resp.Kvs[0])
		if err != nil {
			s.reportCorrupt("jobs/"+id, err)
			continue
		}
		out = append(out, j)
	}
	return out, nil
}
