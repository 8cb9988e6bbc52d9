package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// ErrLeadershipLost is the error of every write of a fenced store once
// its election key is gone (the leader's lease ran out, or it resigned):
// the write changed nothing. It is of class errdefs.ErrUnavailable, so
// that an API client tries again, on another replica.
var ErrLeadershipLost = errdefs.New(errdefs.ErrUnavailable, "leadership lost: this replica is no longer the leader, and the write was refused")

// fence is what a fenced store's writes compare: the election key the
// leader created, with its CreateRevision. A new leader's key is another
// key (it holds the lease id); the old one, once deleted by its lease,
// never comes back with the same CreateRevision.
type fence struct {
	key string
	rev int64
}

// Fenced returns a store over the same keys whose every write transaction
// also requires that key exists with CreateRevision createRev (the
// leader's own election key, as Campaign returns it). Once it does not, a
// write fails with ErrLeadershipLost and changes nothing: a leader paused
// past its lease (GC, SIGSTOP, a partition) that wakes up cannot write,
// and the scheduler, which writes a job's next state before the cloud call
// that depends on it, makes no such call. Reads and Watch are not fenced.
// Closing the fenced store ends its own watches only.
func (s *Store) Fenced(key string, createRev int64) *Store {
	f := &Store{cli: s.cli, p: s.p, opts: s.opts, watchers: map[*watcher]struct{}{}, fence: &fence{key: key, rev: createRev}}
	f.rev.Store(s.rev.Load())
	return f
}

// commit runs one write transaction, with the fence's compare on a fenced
// store: a failed fence is ErrLeadershipLost, other failed compares are a
// response that did not succeed, as for an unfenced store.
func (s *Store) commit(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (*clientv3.TxnResponse, error) {
	if s.fence == nil {
		return s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	}
	cmps = append(cmps[:len(cmps):len(cmps)], clientv3.Compare(clientv3.CreateRevision(s.fence.key), "=", s.fence.rev))
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(s.fence.key, clientv3.WithKeysOnly())).Commit()
	if err != nil || resp.Succeeded {
		return resp, err
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 0 || kvs[0].CreateRevision != s.fence.rev {
		return nil, fmt.Errorf("etcd store %s: election key %s: %w", s.p, s.fence.key, ErrLeadershipLost)
	}
	return resp, nil
}

// ElectionOptions configure an Elector.
type ElectionOptions struct {
	// TTL is the session lease: a leader that stops renewing it (crashed,
	// paused, cut off) loses leadership TTL later at most. Whole seconds;
	// 5 s by default.
	TTL time.Duration
	// ID names the candidate; Leader returns the leader's. Required.
	ID string
}

// Elector is one replica's candidacy: a session (a lease that the client
// keeps alive) and an election on the store's P election/ keys
// (go.etcd.io/etcd/client/v3/concurrency).
type Elector struct {
	s    *Store
	id   string
	sess *concurrency.Session
	el   *concurrency.Election
}

// NewElector starts a session with opts.TTL.
func (s *Store) NewElector(ctx context.Context, opts ElectionOptions) (*Elector, error) {
	if opts.ID == "" || strings.ContainsAny(opts.ID, "/\x00") {
		return nil, errdefs.Invalid("id", "%q must be non-empty, without \"/\" or NUL", opts.ID)
	}
	if opts.TTL == 0 {
		opts.TTL = 5 * time.Second
	}
	if opts.TTL < time.Second || opts.TTL%time.Second != 0 {
		return nil, errdefs.Invalid("ttl", "%s must be whole seconds, at least 1s", opts.TTL)
	}
	// The session's keep-alive runs until Close, not until ctx ends: ctx
	// bounds only the lease grant.
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lease, err := s.cli.Grant(gctx, int64(opts.TTL/time.Second))
	if err != nil {
		return nil, s.etcdErr(ctx, "grant the session lease", err)
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(opts.TTL/time.Second)))
	if err != nil {
		return nil, s.etcdErr(ctx, "start the session", err)
	}
	return &Elector{s: s, id: opts.ID, sess: sess, el: concurrency.NewElection(sess, s.p+"election")}, nil
}

// Campaign blocks until this candidate is the leader (or ctx ends, or the
// session does), then returns the store fenced on its election key: every
// write through it is conditional on still being the leader.
func (e *Elector) Campaign(ctx context.Context) (*Store, error) {
	if err := e.el.Campaign(ctx, e.id); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, e.s.etcdErr(ctx, "campaign", err)
	}
	return e.s.Fenced(e.el.Key(), e.el.Rev()), nil
}

// Leader returns the current leader's id, "" when there is none.
func (e *Elector) Leader(ctx context.Context) (string, error) {
	resp, err := e.el.Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return "", nil
	}
	if err != nil {
		return "", e.s.etcdErr(ctx, "read the leader", err)
	}
	return string(resp.Kvs[0].Value), nil
}

// Done is closed when the session ends: its lease expired or was revoked
// (leadership, if held, is lost), or Close was called.
func (e *Elector) Done() <-chan struct{} { return e.sess.Done() }

// Lease is the session's lease (the member key lives on it).
func (e *Elector) Lease() clientv3.LeaseID { return e.sess.Lease() }

// Resign gives up leadership, so that another candidate wins at once
// rather than after the lease runs out. A no-op if not the leader.
func (e *Elector) Resign(ctx context.Context) error {
	if err := e.el.Resign(ctx); err != nil {
		return e.s.etcdErr(ctx, "resign", err)
	}
	return nil
}

// Close ends the session, revoking its lease: the election key and the
// member key go with it.
func (e *Elector) Close() error { return e.sess.Close() }

// Member is what a replica registers about itself under P members/, on its
// session lease: it disappears when the replica's session ends.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
	Version string `json:"version,omitempty"`
	// ConfigHash is the sha256 of the replica's policy file, hex.
	ConfigHash string    `json:"config_hash,omitempty"`
	Started    time.Time `json:"started"`
}

// Register puts (or replaces) m as this candidate's member key, on the
// session lease. m.ID must be the elector's id.
func (e *Elector) Register(ctx context.Context, m Member) error {
	if m.ID != e.id {
		return errdefs.Invalid("id", "member %q is not the elector's %q", m.ID, e.id)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode member: %v: %w", err, errdefs.ErrInternal)
	}
	if _, err := e.s.cli.Put(ctx, e.s.p+"members/"+m.ID, string(b), clientv3.WithLease(e.sess.Lease())); err != nil {
		return e.s.etcdErr(ctx, "register member", err)
	}
	return nil
}

// Members returns the registered members, by id.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	resp, err := s.cli.Get(ctx, s.p+"members/", clientv3.WithPrefix())
	if err != nil {
		return nil, s.etcdErr(ctx, "read members", err)
	}
	out := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("etcd store %s: member %q does not decode: %v: %w", s.p, kv.Key, err, errdefs.ErrDataLoss)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Fresh reports whether the store has never held a change: meta/revision,
// which every change rewrites, is as New created it. The daemon adopts
// copies made under a lost store only on a fresh one (as bbolt's daemon
// does on a new state file); unlike Revision() == 0, it holds on etcd,
// whose revisions are the cluster's.
func (s *Store) Fresh(ctx context.Context) (bool, error) {
	resp, err := s.cli.Get(ctx, s.metaRevKey())
	if err != nil {
		return false, s.etcdErr(ctx, "read meta", err)
	}
	if len(resp.Kvs) != 1 {
		return false, fmt.Errorf("etcd store %s: meta/revision is missing (was the prefix deleted?): %w", s.p, errdefs.ErrDataLoss)
	}
	return resp.Kvs[0].CreateRevision == resp.Kvs[0].ModRevision, nil
}
