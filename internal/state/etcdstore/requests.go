package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// GetRequest returns a recorded request id with its jobs as they are now.
func (s *Store) GetRequest(ctx context.Context, id string) (*state.RequestResult, error) {
	if err := state.ValidRequestID(id); err != nil {
		return nil, errdefs.Invalid("request_id", "%v", err)
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	rec, _, err := s.getRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("request %q: %w", id, errdefs.ErrNotFound)
	}
	return s.replay(ctx, rec)
}

// getRequest reads a request record; nil if there is none.
func (s *Store) getRequest(ctx context.Context, id string) (*state.RequestRecord, int64, error) {
	resp, err := s.cli.Get(ctx, s.requestKey(id))
	if err != nil {
		return nil, 0, s.etcdErr(ctx, "read request", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	rec, err := state.DecodeRequest("requests/"+id, resp.Kvs[0].Value)
	return rec, resp.Kvs[0].ModRevision, err
}

func (s *Store) replay(ctx context.Context, rec *state.RequestRecord) (*state.RequestResult, error) {
	res := &state.RequestResult{Record: *rec, Replayed: true}
	for _, id := range rec.JobIDs {
		j, _, err := s.get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("request %q names job %s: %w", rec.ID, id, err)
		}
		res.Jobs = append(res.Jobs, j)
	}
	return res, nil
}

// CreateRequest creates the jobs of r and records its id in one
// transaction, conditional on the id being unrecorded, the new jobs absent
// and each reused job unchanged since Reuse accepted it; on a conflict it
// starts again (and then replays a request another caller recorded).
func (s *Store) CreateRequest(ctx context.Context, r *state.Request) (*state.RequestResult, error) {
	cr, err := state.ValidateRequest(r)
	if err != nil {
		return nil, err
	}
	for {
		if err := s.check(ctx); err != nil {
			return nil, err
		}
		if cr.ID != "" {
			rec, _, err := s.getRequest(ctx, cr.ID)
			if err != nil {
				return nil, err
			}
			if rec != nil {
				if rec.Fingerprint != cr.Fingerprint {
					return nil, rec.ErrReused()
				}
				return s.replay(ctx, rec)
			}
		}
		res, done, err := s.tryCreateRequest(ctx, cr)
		if err != nil || done {
			return res, err
		}
	}
}

// tryCreateRequest is one attempt; done is false after a conflict.
func (s *Store) tryCreateRequest(ctx context.Context, cr *state.Request) (*state.RequestResult, bool, error) {
	now := s.opts.Clock.Now()
	rec := state.RequestRecord{ID: cr.ID, Fingerprint: cr.Fingerprint, Summary: cr.Summary, CreateTime: now}
	res := &state.RequestResult{}
	var (
		cmps   []clientv3.Cmp
		ops    []clientv3.Op
		create []*job.Job
	)
	for _, want := range cr.Jobs {
		var found *job.Job
		if cr.Reuse != nil {
			f, mod, err := s.findReusable(ctx, want, cr.Reuse)
			if err != nil {
				return nil, false, err
			}
			if f != nil {
				found = f
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.jobKey(f.ID)), "=", mod))
			}
		}
		if found != nil {
			rec.JobIDs, rec.Existing = append(rec.JobIDs, found.ID), append(rec.Existing, true)
			res.Jobs = append(res.Jobs, found)
			continue
		}
		c := want.Clone()
		if c.CreateTime.IsZero() {
			c.CreateTime = now
		}
		c.UpdateTime = now
		rec.JobIDs, rec.Existing = append(rec.JobIDs, c.ID), append(rec.Existing, false)
		res.Jobs = append(res.Jobs, c)
		create = append(create, c)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.jobKey(c.ID)), "=", 0))
		o, err := s.jobOps(nil, c)
		if err != nil {
			return nil, false, err
		}
		ops = append(ops, o...)
	}
	if cr.ID != "" {
		b, err := state.EncodeRequest(&rec)
		if err != nil {
			return nil, false, err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.requestKey(cr.ID)), "=", 0))
		ops = append(ops, clientv3.OpPut(s.requestKey(cr.ID), string(b)))
	}
	res.Record = rec
	if len(ops) == 0 {
		return res, true, nil // every job reused, nothing to record
	}
	if len(create) > 0 {
		ops = append(ops, s.changeOp())
	}
	resp, err := s.commit(ctx, cmps, ops)
	if err != nil {
		return nil, false, s.etcdErr(ctx, "create request", err)
	}
	if !resp.Succeeded {
		if cr.ID == "" {
			if err := s.firstExisting(ctx, create); err != nil {
				return nil, false, err
			}
		}
		return nil, false, nil
	}
	rev := resp.Header.Revision
	s.noteRev(rev)
	for _, c := range create {
		c.Revision = rev
		res.Created = append(res.Created, c)
	}
	return res, true, nil
}

// findReusable returns the newest job with want's source and destination
// that reuse accepts, with its ModRevision, through image/.
func (s *Store) findReusable(ctx context.Context, want *job.Job, reuse func(existing, wanted *job.Job) bool) (*job.Job, int64, error) {
	prefix := s.p + "image/" + want.SourceImageID + "\x00"
	idx, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, 0, s.etcdErr(ctx, "find reusable jobs", err)
	}
	for _, kv := range idx.Kvs {
		id := strings.TrimPrefix(string(kv.Key), prefix)
		j, mod, err := s.get(ctx, id, clientv3.WithRev(idx.Header.Revision))
		if err != nil {
			if errors.Is(err, errdefs.ErrDataLoss) {
				s.reportCorrupt("jobs/"+id, err)
				continue
			}
			return nil, 0, err
		}
		if j.SourceRegion != want.SourceRegion || j.DestinationRegion != want.DestinationRegion {
			continue
		}
		ok, err := state.CallReuse(reuse, j, want)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			return j, mod, nil
		}
	}
	return nil, 0, nil
}
