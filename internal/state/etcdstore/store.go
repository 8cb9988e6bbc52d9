package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// Options configure a Store.
type Options struct {
	// Prefix is where the store's keys live ("/" is added if missing).
	Prefix string
	// Clock sets CreateTime and UpdateTime; clock.Real by default.
	Clock clock.Clock
	// OnCorrupt, when set, is called once per record that does not decode
	// (it is skipped by List, Active and Watch), as state.Options.OnCorrupt.
	OnCorrupt func(key string, err error)
	// RevisionTimeout bounds the read behind Revision (5 s by default);
	// on failure Revision returns the last revision it knew.
	RevisionTimeout time.Duration
	// MaxTxnOps is the cluster's --max-txn-ops (128 by default, etcd's
	// own default; the daemon's store.etcd.max_txn_ops):
	// CreateUnlessCancelled splits a policy run's jobs into transactions
	// that stay within it. Set above the cluster's, every policy run of
	// more jobs than the cluster takes at once is refused.
	MaxTxnOps int
}

// DefaultMaxTxnOps is etcd's default --max-txn-ops.
const DefaultMaxTxnOps = 128

// opsPerCreatedJob bounds the operations (and compares) one job adds to a
// create transaction: its record, its active and image index keys; the
// compares are its absent key and its pair's tombstone.
const opsPerCreatedJob = 3

// Store is a state.Store over an etcd client. The client is the caller's:
// Close ends the store's watches, not the client.
type Store struct {
	cli  *clientv3.Client
	p    string
	opts Options

	rev atomic.Int64 // the last revision read or written
	// fence, when set, is compared by every write (Fenced).
	fence *fence

	mu       sync.Mutex
	closed   bool
	watchers map[*watcher]struct{} // the watches of their own
	hub      *hub                  // the shared watch, nil until a Watch
	corrupt  map[string]bool
}

var _ state.Store = (*Store)(nil)

// New opens the store under opts.Prefix, creating its meta/revision key
// if it is new.
func New(ctx context.Context, cli *clientv3.Client, opts Options) (*Store, error) {
	if cli == nil {
		return nil, errdefs.Invalid("client", "is nil")
	}
	if opts.Prefix == "" {
		return nil, errdefs.Invalid("prefix", "is empty; give the etcd key prefix of the store, such as /replicatord/")
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.RevisionTimeout <= 0 {
		opts.RevisionTimeout = 5 * time.Second
	}
	if opts.MaxTxnOps <= 0 {
		opts.MaxTxnOps = DefaultMaxTxnOps
	}
	s := &Store{cli: cli, p: opts.Prefix, opts: opts, watchers: map[*watcher]struct{}{}}
	k := s.metaRevKey()
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, "")).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return nil, s.etcdErr(ctx, "open", err)
	}
	if resp.Succeeded {
		s.rev.Store(resp.Header.Revision)
	} else {
		s.rev.Store(resp.Responses[0].GetResponseRange().Kvs[0].ModRevision)
	}
	return s, nil
}

func (s *Store) metaRevKey() string       { return s.p + "meta/revision" }
func (s *Store) metaCompactedKey() string { return s.p + "meta/compacted" }
func (s *Store) jobKey(id string) string  { return s.p + "jobs/" + id }
func (s *Store) activeKey(id string) string {
	return s.p + "active/" + id
}
func (s *Store) imageKey(image, id string) string { return s.p + "image/" + image + "\x00" + id }
func (s *Store) requestKey(id string) string      { return s.p + "requests/" + id }
func (s *Store) tombKey(policy, src, dst string) string {
	return s.p + "tombstones/" + job.TombstoneKey(policy, src, dst)
}

// etcdErr classifies an etcd client error: the caller's context first,
// then ErrUnavailable (the cluster could not be reached or refused).
func (s *Store) etcdErr(ctx context.Context, op string, err error) error {
	if errors.Is(err, ErrLeadershipLost) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
		// Permanent: the same transaction is refused again, so not
		// Unavailable (which callers retry).
		return fmt.Errorf("etcd store %s: %s: %v: one transaction holds too many jobs for the cluster's --max-txn-ops (%d as store.etcd.max_txn_ops says) or --max-request-bytes; copy to fewer destinations per call, or raise the cluster's limits (and max_txn_ops with them): %w",
			s.p, op, err, s.opts.MaxTxnOps, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("etcd store %s: %s: %v: %w", s.p, op, err, errdefs.ErrUnavailable)
}

func (s *Store) check(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("etcd store %s is closed: %w", s.p, errdefs.ErrUnavailable)
	}
	return ctx.Err()
}

func (s *Store) noteRev(rev int64) {
	for {
		old := s.rev.Load()
		if rev <= old || s.rev.CompareAndSwap(old, rev) {
			return
		}
	}
}

func (s *Store) reportCorrupt(key string, err error) {
	s.mu.Lock()
	if s.corrupt == nil {
		s.corrupt = map[string]bool{}
	}
	known := s.corrupt[key]
	s.corrupt[key] = true
	s.mu.Unlock()
	if !known && s.opts.OnCorrupt != nil {
		s.opts.OnCorrupt(key, err)
	}
}

// decode reads a job record; its Revision is the key's ModRevision.
func (s *Store) decode(kv *mvccpb.KeyValue) (*job.Job, error) {
	j, err := state.DecodeJob(strings.TrimPrefix(string(kv.Key), s.p), kv.Value)
	if err != nil {
		return nil, err
	}
	j.Revision = kv.ModRevision
	return j, nil
}

// jobOps are the writes that store j, whose previous version is old (nil
// for a new job): the record and its index keys. Each transaction that
// holds them also puts meta/revision once (changeOp).
func (s *Store) jobOps(old, j *job.Job) ([]clientv3.Op, error) {
	stored := j.Clone()
	stored.Revision = 0 // the key's ModRevision is the revision
	b, err := state.EncodeJob(stored)
	if err != nil {
		return nil, err
	}
	ops := []clientv3.Op{clientv3.OpPut(s.jobKey(j.ID), string(b))}
	switch {
	case !j.State.Terminal() && (old == nil || old.State.Terminal()):
		ops = append(ops, clientv3.OpPut(s.activeKey(j.ID), ""))
	case j.State.Terminal() && old != nil && !old.State.Terminal():
		ops = append(ops, clientv3.OpDelete(s.activeKey(j.ID)))
	}
	if old == nil || old.SourceImageID != j.SourceImageID {
		if old != nil {
			ops = append(ops, clientv3.OpDelete(s.imageKey(old.SourceImageID, j.ID)))
		}
		ops = append(ops, clientv3.OpPut(s.imageKey(j.SourceImageID, j.ID), ""))
	}
	return ops, nil
}

// changeOp marks a transaction as a change: meta/revision's ModRevision
// becomes the transaction's revision.
func (s *Store) changeOp() clientv3.Op { return clientv3.OpPut(s.metaRevKey(), "") }

// Revision reads the revision of the store's last change from etcd, so
// that every replica sees the others' changes. When etcd does not answer
// within RevisionTimeout it returns the last revision it read, which may
// be behind the other replicas' writes (Watch checks a revision itself).
func (s *Store) Revision() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.RevisionTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.metaRevKey())
	if err == nil && len(resp.Kvs) == 1 {
		s.rev.Store(resp.Kvs[0].ModRevision)
	}
	return s.rev.Load()
}

// meta reads meta/ at one revision: the store's revision, its compacted
// revision and the etcd revision of the read.
func (s *Store) meta(ctx context.Context) (rev, compacted, at int64, err error) {
	resp, err := s.cli.Get(ctx, s.p+"meta/", clientv3.WithPrefix())
	if err != nil {
		return 0, 0, 0, s.etcdErr(ctx, "read meta", err)
	}
	for _, kv := range resp.Kvs {
		switch string(kv.Key) {
		case s.metaRevKey():
			rev = kv.ModRevision
		case s.metaCompactedKey():
			if compacted, err = strconv.ParseInt(string(kv.Value), 10, 64); err != nil {
				return 0, 0, 0, fmt.Errorf("etcd store %s: meta/compacted %q does not decode: %w", s.p, kv.Value, errdefs.ErrDataLoss)
			}
		}
	}
	if rev == 0 {
		return 0, 0, 0, fmt.Errorf("etcd store %s: meta/revision is missing (was the prefix deleted?): %w", s.p, errdefs.ErrDataLoss)
	}
	s.rev.Store(rev)
	return rev, compacted, resp.Header.Revision, nil
}

// Get returns one job.
func (s *Store) Get(ctx context.Context, id string) (*job.Job, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	j, _, err := s.get(ctx, id)
	return j, err
}

// get reads job id and its ModRevision.
func (s *Store) get(ctx context.Context, id string, opts ...clientv3.OpOption) (*job.Job, int64, error) {
	resp, err := s.cli.Get(ctx, s.jobKey(id), opts...)
	if err != nil {
		return nil, 0, s.etcdErr(ctx, "get job "+id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("job %q: %w", id, errdefs.ErrNotFound)
	}
	j, err := s.decode(resp.Kvs[0])
	if err != nil {
		return nil, 0, err
	}
	return j, resp.Kvs[0].ModRevision, nil
}

// Create inserts jobs in one transaction.
func (s *Store) Create(ctx context.Context, jobs ...*job.Job) error {
	_, err := s.create(ctx, false, jobs)
	return err
}

// CreateUnlessCancelled is Create leaving out the jobs whose pair holds a
// tombstone, compared in the same transaction.
func (s *Store) CreateUnlessCancelled(ctx context.Context, jobs ...*job.Job) ([]job.Tombstone, error) {
	return s.create(ctx, true, jobs)
}

func (s *Store) create(ctx context.Context, unlessCancelled bool, jobs []*job.Job) ([]job.Tombstone, error) {
	if err := state.ValidateCreate(jobs); err != nil {
		return nil, err
	}
	if !unlessCancelled {
		return s.createTxn(ctx, false, jobs)
	}
	// A policy run creates a job per (image, region) pair: 60 of them
	// already pass etcd's default of 128 operations in one transaction,
	// which would fail the run every time. Each pair stands alone (its
	// tombstone is compared in the transaction that creates its job), so
	// the run is split into transactions within the limit.
	per := max(1, (s.opts.MaxTxnOps-2)/opsPerCreatedJob) // room for the change key and the fence
	var skipped []job.Tombstone
	for len(jobs) > 0 {
		n := min(per, len(jobs))
		sk, err := s.createTxn(ctx, true, jobs[:n])
		skipped = append(skipped, sk...)
		if err != nil {
			return skipped, err
		}
		jobs = jobs[n:]
	}
	return skipped, nil
}

// createTxn creates jobs in one transaction.
func (s *Store) createTxn(ctx context.Context, unlessCancelled bool, jobs []*job.Job) ([]job.Tombstone, error) {
	for {
		if err := s.check(ctx); err != nil {
			return nil, err
		}
		var (
			cmps    []clientv3.Cmp
			skipped []job.Tombstone
			create  []*job.Job
		)
		for _, j := range jobs {
			if unlessCancelled && j.Policy != "" {
				k := s.tombKey(j.Policy, j.SourceImageID, j.DestinationRegion)
				resp, err := s.cli.Get(ctx, k)
				if err != nil {
					return nil, s.etcdErr(ctx, "read tombstone", err)
				}
				if len(resp.Kvs) == 1 {
					var t job.Tombstone
					if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
						return nil, fmt.Errorf("etcd store %s: tombstone %q does not decode: %v: %w", s.p, k, err, errdefs.ErrDataLoss)
					}
					skipped = append(skipped, t)
					cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", resp.Kvs[0].ModRevision))
					continue
				}
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			}
			create = append(create, j)
		}
		if len(create) == 0 {
			return skipped, nil
		}
		now := s.opts.Clock.Now()
		var ops []clientv3.Op
		stored := make([]*job.Job, len(create))
		for i, j := range create {
			c := j.Clone()
			if c.CreateTime.IsZero() {
				c.CreateTime = now
			}
			c.UpdateTime = now
			stored[i] = c
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.jobKey(j.ID)), "=", 0))
			o, err := s.jobOps(nil, c)
			if err != nil {
				return nil, err
			}
			ops = append(ops, o...)
		}
		resp, err := s.commit(ctx, cmps, append(ops, s.changeOp()))
		if err != nil {
			return nil, s.etcdErr(ctx, "create", err)
		}
		if !resp.Succeeded {
			if err := s.firstExisting(ctx, create); err != nil {
				return nil, err
			}
			continue // a tombstone changed: read again
		}
		rev := resp.Header.Revision
		s.noteRev(rev)
		for i, j := range create {
			j.Revision, j.CreateTime, j.UpdateTime = rev, stored[i].CreateTime, stored[i].UpdateTime
		}
		return skipped, nil
	}
}

// firstExisting returns ErrAlreadyExists naming the first of jobs that
// exists, or nil.
func (s *Store) firstExisting(ctx context.Context, jobs []*job.Job) error {
	for _, j := range jobs {
		resp, err := s.cli.Get(ctx, s.jobKey(j.ID), clientv3.WithCountOnly())
		if err != nil {
			return s.etcdErr(ctx, "create", err)
		}
		if resp.Count > 0 {
			return fmt.Errorf("job %q: %w", j.ID, errdefs.ErrAlreadyExists)
		}
	}
	return nil
}

// Tombstones returns the tombstones of a policy.
func (s *Store) Tombstones(ctx context.Context, policy string) ([]job.Tombstone, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, s.p+"tombstones/"+policy+"\x00", clientv3.WithPrefix())
	if err != nil {
		return nil, s.etcdErr(ctx, "read tombstones", err)
	}
	out := make([]job.Tombstone, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var t job.Tombstone
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			return nil, fmt.Errorf("etcd store %s: tombstone %q does not decode: %v: %w", s.p, kv.Key, err, errdefs.ErrDataLoss)
		}
		out = append(out, t)
	}
	return out, nil
}

// Update changes job id with fn, in a transaction conditional on the
// job's ModRevision; on a conflict it reads the job again and reruns fn.
func (s *Store) Update(ctx context.Context, id string, fn func(*job.Job) error) (*job.Job, error) {
	if err := state.ValidateUpdateArgs(id, fn); err != nil {
		return nil, err
	}
	for {
		if err := s.check(ctx); err != nil {
			return nil, err
		}
		old, mod, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		j, changed, err := state.ApplyUpdate(old, fn)
		if err != nil {
			return nil, err
		}
		if !changed {
			return old, nil
		}
		j.UpdateTime = s.opts.Clock.Now()
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.jobKey(id)), "=", mod)}
		ops, err := s.jobOps(old, j)
		if err != nil {
			return nil, err
		}
		tc, to, err := s.tombstoneOps(ctx, old, j)
		if err != nil {
			return nil, err
		}
		cmps, ops = append(cmps, tc...), append(append(ops, to...), s.changeOp())
		resp, err := s.commit(ctx, cmps, ops)
		if err != nil {
			return nil, s.etcdErr(ctx, "update job "+id, err)
		}
		if !resp.Succeeded {
			continue
		}
		j.Revision = resp.Header.Revision
		s.noteRev(j.Revision)
		return j, nil
	}
}

// tombstoneOps are the compares and writes that move the tombstone of j's
// pair as state.TombstoneChange says.
func (s *Store) tombstoneOps(ctx context.Context, old, j *job.Job) ([]clientv3.Cmp, []clientv3.Op, error) {
	put, lift := state.TombstoneChange(old, j)
	k := s.tombKey(j.Policy, j.SourceImageID, j.DestinationRegion)
	switch {
	case put != nil:
		b, err := json.Marshal(put)
		if err != nil {
			return nil, nil, fmt.Errorf("encode tombstone: %v: %w", err, errdefs.ErrInternal)
		}
		return nil, []clientv3.Op{clientv3.OpPut(k, string(b))}, nil
	case lift:
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return nil, nil, s.etcdErr(ctx, "read tombstone", err)
		}
		if len(resp.Kvs) == 0 {
			return nil, nil, nil
		}
		var t job.Tombstone
		if json.Unmarshal(resp.Kvs[0].Value, &t) == nil && t.JobID != j.ID {
			return nil, nil, nil // another job's cancel
		}
		return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", resp.Kvs[0].ModRevision)},
			[]clientv3.Op{clientv3.OpDelete(k)}, nil
	}
	return nil, nil, nil
}

// Close ends every watch (ErrUnavailable) and refuses further calls. The
// client stays open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ws := make([]*watcher, 0, len(s.watchers))
	for w := range s.watchers {
		ws = append(ws, w)
	}
	h := s.hub
	s.mu.Unlock()
	if h != nil {
		h.end(fmt.Errorf("etcd store %s closed: %w", s.p, errdefs.ErrUnavailable))
	}
	for _, w := range ws {
		w.finish(fmt.Errorf("etcd store %s closed: %w", s.p, errdefs.ErrUnavailable))
		<-w.done
	}
	return nil
}

// sortDesc orders ids newest first.
func sortDesc(ids []string) {
	slices.Sort(ids)
	slices.Reverse(ids)
}

// Prefix is the key prefix the store lives under.
func (s *Store) Prefix() string { return s.p }
