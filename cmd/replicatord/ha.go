package main

// High availability on etcd (store.backend: etcd). Every replica opens the
// shared store and serves the whole API at once: reads and Watch come from
// the store, and writes (Copy, Cancel, Retry) go through a scheduler that
// is built but never started, which only writes the store. Each replica
// also campaigns for leadership on a session lease (store.etcd.lease_ttl).
// The leader builds a second scheduler over the store fenced on its
// election key, starts it (it picks every change up from the store's
// change feed, wherever it was written) and runs the policy reconcilers
// and retention on it: every write they make is conditional on still
// leading.
//
// When the session ends (the lease ran out: the process was paused, or
// cut off from etcd for longer than the TTL) the process exits with status
// 1 at once, leader or not, and its supervisor (systemd, Kubernetes)
// starts it again as a fresh candidate. Exiting is safer than stepping
// down in-process, as kube-controller-manager does: a process that lost
// its lease may hold in-flight steps, timers, cached job states and cloud
// calls in progress, and tearing all of that down correctly inside a
// running process is where split-brain bugs live; a new process starts
// from the store alone. Fencing makes the window before the exit harmless
// (every write is refused). On SIGTERM the leader stops its scheduler and
// resigns, so that another replica leads at once instead of after the
// lease.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/replicatord/replicatord/internal/policy"
	"github.com/replicatord/replicatord/internal/reconcile"
	"github.com/replicatord/replicatord/internal/scheduler"
	"github.com/replicatord/replicatord/internal/server"
	"github.com/replicatord/replicatord/internal/state/etcdstore"
)

// Environment variables of the etcd credentials: never in the file, never
// logged.
const (
	envEtcdUsername = "REPLICATORD_ETCD_USERNAME"
	envEtcdPassword = "REPLICATORD_ETCD_PASSWORD"
	// envMemberID names this replica in the member list and the election
	// (default: hostname-pid).
	envMemberID = "REPLICATORD_MEMBER_ID"
)

// errSessionLost ends the process: see the package comment above.
var errSessionLost = errors.New("the etcd session (lease) ended: leadership, if held, is lost; exiting so that the supervisor restarts this replica as a new candidate")

// ha is the daemon's etcd side; nil with bbolt.
type ha struct {
	cli     *clientv3.Client
	base    *etcdstore.Store
	elector *etcdstore.Elector
	member  etcdstore.Member

	mu       sync.Mutex
	leading  bool
	lead     *scheduler.Scheduler // the started scheduler, over the fenced store
	leadRec  *reconcile.Reconciler
	stopLead func() // stops lead, leadRec and retention
	closing  bool

	// The campaign's lifetime, made in openEtcd so that campaign, which
	// may run on waitForCloud's goroutine, appends no closer.
	campaignCtx    context.Context
	campaignCancel context.CancelFunc
	campaignDone   chan struct{}
	campaigning    bool
}

// etcdTLS builds the client's TLS config from store.etcd.tls: TLS 1.2 or
// later, the system's roots unless ca_file is given.
func etcdTLS(c policy.EtcdTLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("store.etcd.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store.etcd.tls.ca_file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			// The error names the files, never their contents.
			return nil, fmt.Errorf("store.etcd.tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// memberID is this replica's id: REPLICATORD_MEMBER_ID, or hostname-pid.
func memberID() (string, error) {
	if id := os.Getenv(envMemberID); id != "" {
		if strings.ContainsAny(id, "/\x00") || len(id) > 128 {
			return "", &usageError{fmt.Errorf("%s %q: at most 128 characters, without \"/\" or NUL", envMemberID, id)}
		}
		return id, nil
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "replicatord"
	}
	return strings.ReplaceAll(host, "/", "_") + "-" + strconv.Itoa(os.Getpid()), nil
}

// configHash is the sha256 of the policy file's bytes, hex; "" if it
// cannot be read.
func configHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// openEtcd connects to the cluster, opens the store under the prefix and
// starts this replica's session (its candidacy starts in campaign). Every
// failure is exit 1: the cluster may come back, and the supervisor retries.
func (d *daemon) openEtcd(ctx context.Context) error {
	e := d.file.Store.Etcd
	cfg := clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: e.DialTimeout,
		Username:    os.Getenv(envEtcdUsername),
		Password:    os.Getenv(envEtcdPassword),
		// The client's own zap logs would bypass the daemon's log format;
		// its errors reach the daemon as returned errors.
		Logger: zap.NewNop(),
	}
	if !e.Insecure {
		tc, err := etcdTLS(e.TLS)
		if err != nil {
			return &usageError{err}
		}
		cfg.TLS = tc
	}
	id, err := memberID()
	if err != nil {
		return err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", strings.Join(e.Endpoints, ","), err)
	}
	h := &ha{cli: cli}
	d.ha = h
	d.closers = append(d.closers, func() { cli.Close() })
	octx, cancel := context.WithTimeout(ctx, 2*e.DialTimeout+5*time.Second)
	defer cancel()
	base, err := etcdstore.New(octx, cli, etcdstore.Options{Prefix: e.Prefix, MaxTxnOps: e.MaxTxnOps, OnCorrupt: d.corruptRecord})
	if err != nil {
		return fmt.Errorf("etcd store at %s: %w", strings.Join(e.Endpoints, ","), err)
	}
	h.base = base
	d.store = base
	d.closers = append(d.closers, func() { base.Close() })
	el, err := base.NewElector(octx, etcdstore.ElectionOptions{ID: id, TTL: e.LeaseTTL})
	if err != nil {
		return fmt.Errorf("etcd session: %w", err)
	}
	h.elector = el
	h.member = etcdstore.Member{ID: id, Address: d.tc.Address, Version: version(), ConfigHash: configHash(d.fl.config), Started: d.started}
	if err := el.Register(octx, h.member); err != nil {
		el.Close()
		return fmt.Errorf("etcd member registration: %w", err)
	}
	// The session's end is the process's: see errSessionLost.
	go func() {
		<-el.Done()
		h.mu.Lock()
		closing := h.closing
		h.mu.Unlock()
		if !closing {
			d.failed <- errSessionLost
		}
	}()
	d.closers = append(d.closers, d.stopHA)
	// After stopHA, so that it runs first (closers run in reverse): the
	// campaign (and a take-over in progress) ends before leading stops.
	h.campaignCtx, h.campaignCancel = context.WithCancel(context.Background())
	h.campaignDone = make(chan struct{})
	d.closers = append(d.closers, func() {
		h.campaignCancel()
		h.mu.Lock()
		started := h.campaigning
		h.mu.Unlock()
		if started {
			<-h.campaignDone
		}
	})
	d.log.Info("etcd store open; campaigning for leadership", "endpoints", e.Endpoints, "prefix", base.Prefix(), "member", id, "lease_ttl", e.LeaseTTL)
	return nil
}

// stopHA stops leading (scheduler, reconcilers, retention), resigns so
// that another replica leads at once, and ends the session.
func (d *daemon) stopHA() {
	h := d.ha
	h.mu.Lock()
	h.closing = true
	stop, leading := h.stopLead, h.leading
	h.stopLead = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
	if leading {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.elector.Resign(ctx); err != nil {
			d.log.Warn("resign failed; another replica leads once this one's lease runs out", "err", err.Error())
		} else {
			d.log.Info("resigned leadership")
		}
		cancel()
	}
	h.elector.Close()
}

// campaign runs in the background until this replica leads, then leads.
// Called once the cloud answers (a replica that cannot reach the cloud
// does not stand).
func (d *daemon) campaign() {
	h := d.ha
	ctx := h.campaignCtx
	h.mu.Lock()
	if h.campaigning || h.closing {
		h.mu.Unlock()
		return
	}
	h.campaigning = true
	h.mu.Unlock()
	go func() {
		defer close(h.campaignDone)
		fenced, err := h.elector.Campaign(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.failed <- fmt.Errorf("campaign: %w", err)
			}
			return
		}
		if err := d.lead(ctx, fenced); err != nil && ctx.Err() == nil {
			d.failed <- fmt.Errorf("taking over as leader: %w", err)
		}
	}()
}

// lead starts the scheduler over the fenced store, then the reconcilers
// and retention on it.
func (d *daemon) lead(ctx context.Context, fenced *etcdstore.Store) error {
	h := d.ha
	d.log.Info("elected leader; starting the scheduler and the policies", "member", h.member.ID)
	fresh, err := h.base.Fresh(ctx)
	if err != nil {
		return err
	}
	sched := d.newScheduler(fenced)
	if err := sched.Start(ctx); err != nil {
		return err
	}
	rctx, rcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	rec := d.newReconciler(sched)
	stopRetention := d.runRetention(fenced)
	stop := func() {
		rcancel()
		wg.Wait()
		stopRetention()
		sctx, cancel := context.WithTimeout(context.Background(), d.fl.shutdownGrace)
		defer cancel()
		sched.Stop(sctx)
	}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		stop()
		return nil
	}
	h.leading, h.lead, h.leadRec, h.stopLead = true, sched, rec, stop
	h.mu.Unlock()
	d.reloadMu.Lock()
	if fresh {
		d.adopt(ctx, sched)
	}
	rec.SetPolicies(d.file)
	d.reloadMu.Unlock()
	wg.Add(1)
	go func() { defer wg.Done(); rec.Run(rctx) }()
	d.log.Info("leading", "member", h.member.ID, "policies", len(d.file.Policies))
	return nil
}

// leader returns the started scheduler and reconciler: bbolt's own, or
// with etcd the leader's (nil on a follower).
func (d *daemon) leader() (*scheduler.Scheduler, *reconcile.Reconciler) {
	if d.ha == nil {
		return d.sched, d.rec
	}
	d.ha.mu.Lock()
	defer d.ha.mu.Unlock()
	return d.ha.lead, d.ha.leadRec
}

// members fills GetStatus's members and leader.
func (d *daemon) members(st *server.Status) {
	if d.ha == nil {
		id, _ := memberID()
		st.Leader = id
		st.Members = []server.Member{{ID: id, Address: d.tc.Address, Role: "leader", Version: version(), ConfigHash: d.hash(), Started: d.started}}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	leader, err := d.ha.elector.Leader(ctx)
	if err != nil {
		st.MembersError = err.Error()
		return
	}
	ms, err := d.ha.base.Members(ctx)
	if err != nil {
		st.MembersError = err.Error()
		return
	}
	st.Leader = leader
	for _, m := range ms {
		role := "follower"
		if m.ID == leader {
			role = "leader"
		}
		st.Members = append(st.Members, server.Member{ID: m.ID, Address: m.Address, Role: role, Version: m.Version, ConfigHash: m.ConfigHash, Started: m.Started})
	}
}

// hash is the config hash of this replica's loaded file.
func (d *daemon) hash() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfgHash
}

// noteConfig records the loaded file's hash and, with etcd, registers it.
func (d *daemon) noteConfig(ctx context.Context) {
	h := configHash(d.fl.config)
	d.mu.Lock()
	d.cfgHash = h
	d.mu.Unlock()
	if d.ha == nil {
		return
	}
	d.ha.member.ConfigHash = h
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.ha.elector.Register(rctx, d.ha.member); err != nil {
		d.log.Warn("could not update this replica's config hash in the member list", "err", err.Error())
	}
}

// policiesView is what the policy RPCs see: the leader's reconciler when
// this replica leads, else the follower's own (built, never run), whose
// Plan reads the cloud and the store but which never triggers a run.
type policiesView struct{ d *daemon }

func (v policiesView) current() (*reconcile.Reconciler, bool) {
	if _, rec := v.d.leader(); rec != nil {
		return rec, true
	}
	return v.d.rec, false
}

func (v policiesView) Status() []reconcile.PolicyStatus {
	r, _ := v.current()
	return r.Status()
}

func (v policiesView) Plan(ctx context.Context, names []string) ([]policy.Item, error) {
	r, _ := v.current()
	return r.Plan(ctx, names)
}

// Trigger runs a policy now on the leader only: a follower's answer lists
// no policy as started.
func (v policiesView) Trigger(name string) bool {
	r, leading := v.current()
	return leading && r.Trigger(name)
}

var _ server.Policies = policiesView{}

// storeStatus describes the store for GetStatus.
func (d *daemon) storeStatus() server.StoreStatus {
	if d.ha == nil {
		return server.StoreStatus{Backend: policy.BackendBbolt, Path: d.storePath(), Revision: d.store.Revision()}
	}
	e := d.file.Store.Etcd
	return server.StoreStatus{Backend: policy.BackendEtcd, Path: strings.Join(e.Endpoints, ",") + " " + d.ha.base.Prefix(), Revision: d.store.Revision()}
}
