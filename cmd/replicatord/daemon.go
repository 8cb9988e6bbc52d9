package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/cloud/aliyun"
	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/metrics"
	"github.com/replicatord/replicatord/internal/policy"
	"github.com/replicatord/replicatord/internal/reconcile"
	"github.com/replicatord/replicatord/internal/scheduler"
	"github.com/replicatord/replicatord/internal/server"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/transport"
)

// daemon holds the running parts, torn down in reverse order of start.
type daemon struct {
	log      *slog.Logger
	fl       *flags
	file     *policy.File
	store    state.Store
	local    localStore // the store's file operations; nil for a store without a local file
	provider *aliyun.Provider
	emu      *ecsemu.Emulator
	emuHTTP  *http.Server
	sched    *scheduler.Scheduler
	rec      *reconcile.Reconciler
	grpc     *grpc.Server
	health   *health.Server
	metrics  *metrics.Metrics
	tc       transport.ServerConfig
	grpcOpts []grpc.ServerOption
	failed   chan error

	started  time.Time
	cloudCfg policy.Cloud // as at start: cloud settings change only with a restart

	mu       sync.Mutex
	regions  map[string]bool
	notReady error     // why the daemon is NOT_SERVING; nil once ready
	reached  time.Time // when a call last reached ECS
	lastErr  string    // the last failure to reach ECS, "" after a success
	// reloadMu serialises reloads (SIGHUP and the RPC).
	reloadMu sync.Mutex

	// ha is the etcd side (election, members); nil with bbolt.
	ha      *ha
	cfgHash string // sha256 of the loaded policy file, hex

	closers []func()
}

func start(ctx context.Context, fl *flags, stdout, stderr io.Writer) (_ *daemon, err error) {
	// Every check comes before anything is created on disk (data dir,
	// state.db, socket), and every problem is reported in one go: the file's
	// own, the flags', and the regions the cloud does not know, when the
	// cloud answers now.
	file, fileErr := policy.LoadLenient(fl.config)
	if file == nil {
		return nil, &usageError{fmt.Errorf("config %s:\n%w", fl.config, fileErr)}
	}
	d := &daemon{fl: fl, file: file, failed: make(chan error, 4), metrics: metrics.New(), started: time.Now(),
		notReady: errors.New("starting")}
	defer func() {
		if err != nil {
			d.shutdown()
		}
	}()
	var problems []error
	if d.log, err = newLogger(stderr, pick(fl.logFormat, file.Daemon.LogFormat), pick(fl.logLevel, file.Daemon.LogLevel)); err != nil {
		if fileErr == nil || fl.logFormat != "" || fl.logLevel != "" {
			problems = append(problems, &usageError{err})
		}
		d.log, _ = newLogger(stderr, "", "")
	}
	if sdkDebugStripped {
		d.log.Warn("removed DEBUG=sdk from the environment: the SDK's debug output prints the AccessKeyId and signature of every request")
	}

	dataDir := pick(fl.dataDir, file.Daemon.DataDir)
	if dataDir == "" {
		dataDir = policy.DefaultDataDir
	}
	if err := d.prepareTransport(dataDir); err != nil {
		problems = append(problems, err)
	}
	metricsAddr := pick(fl.metricsListen, file.Daemon.MetricsListen)
	if metricsAddr != "" {
		if _, _, err := net.SplitHostPort(metricsAddr); err != nil {
			problems = append(problems, &usageError{fmt.Errorf("--metrics-listen %q: %v", metricsAddr, err)})
		}
	}
	ready := false
	simulated := file.Cloud.Provider == policy.ProviderSimulated
	if simulated {
		// The emulator keeps its state in the data dir, which must not be
		// created before the config is known good: it starts below, and its
		// region list is known without it.
		d.cloudCfg = file.Cloud
		d.setRegions(ecsemu.RegionIDs())
		ready = true
		fileErr = policy.MergeErrors(fileErr, file.ValidateEnv(d.env()))
	} else if fileErr == nil || !cloudSectionBad(fileErr) {
		if err := d.startCloud(stdout, dataDir); err != nil {
			problems = append(problems, err)
		}
	}
	if d.provider != nil {
		// One attempt now, so that unknown regions are config errors
		// reported with the rest; if the cloud cannot be asked, the daemon
		// starts anyway and asks again until it answers (waitForCloud).
		if perr := d.probeCloud(ctx); perr == nil {
			ready = true
			fileErr = policy.MergeErrors(fileErr, file.ValidateEnv(d.env()))
		} else if fileErr == nil && len(problems) == 0 {
			d.log.Warn("the cloud does not answer; serving NOT_SERVING and trying again", "reason", perr.Error())
		}
	}
	if fileErr != nil {
		problems = append([]error{&usageError{fmt.Errorf("config %s:\n%w", fl.config, fileErr)}}, problems...)
	}
	if len(problems) > 0 {
		all := errors.Join(problems...)
		for _, p := range problems {
			var ue *usageError
			if !errors.As(p, &ue) {
				return nil, all // not only config errors: exit 1
			}
		}
		return nil, &usageError{all}
	}
	if d.provider != nil { // nil only for the simulated cloud, started below
		if eps := d.provider.PlainHTTPEndpoints(); len(eps) > 0 {
			d.log.Warn("PLAIN HTTP to the cloud: the AccessKeyId and every signed request travel unencrypted; use https:// or a scheme-less host", "endpoints", eps)
			fmt.Fprintf(stderr, "replicatord: WARNING: plain HTTP to the cloud endpoint(s) %s: requests and the AccessKeyId are sent unencrypted\n", strings.Join(eps, ", "))
		}
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	etcd := file.Store.Backend == policy.BackendEtcd
	if etcd {
		// No local file: the store, the election and the member list are
		// in etcd (ha.go).
		if err := d.openEtcd(ctx); err != nil {
			return nil, err
		}
		if simulated {
			d.log.Warn("simulated cloud with the etcd store: each replica simulates a cloud of its own, so a failover loses the copies in flight; for tests only")
		}
	} else {
		db, err := state.Open(filepath.Join(dataDir, "state.db"), state.Options{OnCorrupt: d.corruptRecord})
		if err != nil {
			return nil, err
		}
		// Assigned only on success: a nil *state.DB in the interface would not
		// compare equal to nil.
		d.store, d.local = db, db
		d.closers = append(d.closers, func() { d.store.Close() })
		d.scanState()
	}
	d.noteConfig(ctx)
	if simulated {
		if err := d.startCloud(stdout, dataDir); err != nil {
			return nil, err
		}
	}

	// With etcd this scheduler is never started: it serves the API's
	// writes into the store, and the leader runs its own (ha.go).
	d.sched = d.newScheduler(d.store)
	d.metrics.SetJobSource(d.jobStats)
	d.metrics.SetSlotLimits(d.sched.Slots)
	d.metrics.SetBuildInfo(buildInfo())
	// Before the scheduler starts: the preset only creates region gauges
	// that the scheduler has not reported yet.
	d.metrics.Preset(d.known(file))
	// Health exists before anything serves: /readyz reports NOT_SERVING
	// until the gRPC server is up.
	d.health = health.NewServer()
	d.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	d.metrics.SetReadiness(d.readiness)
	if metricsAddr != "" {
		if err := d.serveMetrics(ctx, metricsAddr); err != nil {
			return nil, err
		}
	}
	// A new state file (nothing ever written) adopts the copies a lost
	// one knew. bbolt's revisions are its own, so 0 means new; etcd's
	// are the cluster's, and its leader asks the store (Fresh) instead.
	fresh := !etcd && d.store.Revision() == 0
	if !etcd {
		if err := d.sched.Start(ctx); err != nil {
			return nil, err
		}
	}
	d.closers = append(d.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), fl.shutdownGrace)
		defer cancel()
		d.sched.Stop(sctx)
	})

	d.rec = d.newReconciler(d.sched)
	if !etcd {
		// Retention needs only the store, so it runs while the cloud is
		// still unreachable too.
		d.closers = append(d.closers, d.runRetention(d.store))
		d.runReconciler()
	}
	if ready {
		// Regions were checked with the rest of the config above. Ready
		// before the socket exists, so that the first request after
		// "replicatord ready" is served.
		d.activate(ctx, fresh)
		d.mu.Lock()
		d.notReady = nil
		d.mu.Unlock()
	}
	if err := d.serve(stdout, ready); err != nil {
		return nil, err
	}
	if !ready {
		fmt.Fprintf(stdout, "replicatord NOT_SERVING until the cloud answers: %v\n", d.cloudErr())
		d.waitForCloud(fresh)
	}
	return d, nil
}

// newScheduler builds a scheduler over store with the file's settings.
func (d *daemon) newScheduler(store state.Store) *scheduler.Scheduler {
	sc := d.file.Scheduler
	return scheduler.New(store, d.provider, scheduler.Options{
		Logger:         d.log.With("component", "scheduler"),
		SlotsPerRegion: sc.CopySlotsPerRegion,
		RegionSlots:    sc.RegionSlots,
		Lookahead:      sc.Lookahead,
		MaxAttempts:    sc.MaxAttempts,
		MaxRetries:     sc.MaxRetries,
		Owner:          d.file.Daemon.Owner,
		APIRate:        sc.APIRatePerSecond,
		PollMin:        sc.PollMin,
		PollMax:        sc.PollMax,
		LookaheadTime:  sc.LookaheadTime,
		DetectLag:      sc.DetectionLag,
		CopyConflict:   sc.CopyConflict,
		RetryBase:      sc.RetryBase,
		QuotaWait:      sc.QuotaWait,
		CallTimeout:    sc.CallTimeout,
		Observer:       d.metrics,
	})
}

// cloudSectionBad reports whether the file's problems include one in the
// cloud section, which then cannot be used to ask the cloud anything.
func cloudSectionBad(err error) bool {
	var ve *policy.ValidationErrors
	if !errors.As(err, &ve) {
		return true
	}
	for _, e := range ve.Errors {
		if e.Policy == "" && strings.HasPrefix(e.Message, "cloud") {
			return true
		}
	}
	return false
}

// startCloud connects the SDK adapter to the real cloud, or to the ECS
// emulator started here for the simulated cloud, whose state lives in the
// data dir next to state.db: a restart finds its copies where it left them,
// as it would in the cloud.
func (d *daemon) startCloud(stdout io.Writer, dataDir string) error {
	c := d.file.Cloud
	d.cloudCfg = c
	cfg := aliyun.Config{
		Endpoint:       c.Endpoint,
		Endpoints:      c.Endpoints,
		Network:        c.Network,
		Region:         c.Region,
		ConnectTimeout: c.ConnectTimeout,
		ReadTimeout:    c.ReadTimeout,
		MaxConcurrency: c.MaxConcurrency,
		UserAgent:      "replicatord/" + version(),
		Observer:       d.observeCall,
	}
	switch c.Provider {
	case policy.ProviderSimulated:
		// Fresh random keys: the emulator verifies every signature, as ECS does.
		id, secret := randomHex(8), randomHex(16)
		sim := c.Simulated
		emu, err := ecsemu.New(ecsemu.Config{
			Credentials:      map[string]string{"LTAIsim" + id: secret},
			Seed:             sim.Seed,
			TimeScale:        sim.TimeScale,
			DefaultRateMiBps: sim.CopyRateMiBps,
			StartupDelay:     sim.StartupDelay,
			MaxImageSizeGiB:  sim.MaxImageSizeGiB,
			ComplianceRule:   sim.ComplianceRule,
			DeniedRoutes:     sim.DeniedRoutes,
			CopyConflict:     d.file.Scheduler.CopyConflict,
			StateFile:        filepath.Join(dataDir, simulatedStateFile),
		})
		if err != nil {
			return &usageError{fmt.Errorf("simulated cloud: %w", err)}
		}
		d.emu = emu
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("simulated cloud: %w", err)
		}
		d.emuHTTP = &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := d.emuHTTP.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.failed <- fmt.Errorf("simulated cloud: %w", err)
			}
		}()
		d.closers = append(d.closers, func() { d.emuHTTP.Close(); emu.Close() })
		cfg.Endpoint = "http://" + ln.Addr().String()
		cfg.Insecure = true
		cfg.Credentials = aliyun.Credentials{AccessKeyID: "LTAIsim" + id, AccessKeySecret: secret}
		fmt.Fprintf(stdout, "SIMULATED CLOUD: no real cloud is used; ECS emulator at %s (time scale %gx)\n", cfg.Endpoint, sim.TimeScale)
		d.log.Warn("simulated cloud: no real cloud is used", "emulator", cfg.Endpoint, "state", filepath.Join(dataDir, simulatedStateFile))
	case policy.ProviderAliyun:
		if creds, ok := aliyun.CredentialsFromEnv(); ok {
			cfg.Credentials = creds
		}
		// ALIBABA_CLOUD_ROLE_ARN (with the keys above, or with an OIDC
		// token file) signs with the role's renewed session keys.
		role, err := aliyun.AssumeRoleFromEnv(os.Getenv)
		if err != nil {
			return &usageError{fmt.Errorf("cloud: %w", err)}
		}
		cfg.AssumeRole = role
		// Plain HTTP only for an endpoint written as an http:// URL (warned
		// about at start); a host without a scheme is HTTPS.
		cfg.Insecure = hasHTTP(c.Endpoint)
		for _, ep := range c.Endpoints {
			cfg.Insecure = cfg.Insecure || hasHTTP(ep)
		}
	default:
		return &usageError{fmt.Errorf("cloud.provider %q is not supported", c.Provider)}
	}
	p, err := aliyun.New(cfg)
	if err != nil {
		return &usageError{fmt.Errorf("cloud: %w", err)}
	}
	d.provider = p
	d.closers = append(d.closers, p.Close)
	return nil
}

// simulatedStateFile holds the simulated cloud's images and copies.
const simulatedStateFile = "simulated-cloud.json"

func hasHTTP(endpoint string) bool {
	return len(endpoint) > 7 && strings.EqualFold(endpoint[:7], "http://")
}

func (d *daemon) env() policy.Env {
	env := policy.Env{Regions: d.knownRegions()}
	if d.file.Cloud.Provider == policy.ProviderSimulated {
		env.Denied = policy.DeniedByRule(d.file.Cloud.Simulated.ComplianceRule, d.file.Cloud.Simulated.DeniedRoutes)
	}
	return env
}

// prepareTransport checks the gRPC listen settings and builds the server
// options (reading certificates and tokens).
func (d *daemon) prepareTransport(dataDir string) error {
	addr := pick(d.fl.listen, d.file.Daemon.Listen)
	if addr == "" {
		addr = "unix://" + absPath(filepath.Join(dataDir, "replicatord.sock"))
	}
	d.tc = transport.ServerConfig{
		Address:   addr,
		TLSCert:   d.fl.tlsCert,
		TLSKey:    d.fl.tlsKey,
		ClientCA:  d.fl.tlsClientCA,
		Insecure:  d.fl.insecure,
		TokenFile: d.fl.tokenFile,
		OnReload:  d.metrics.ObserveReload,
	}
	if d.fl.reflection != "" {
		v := d.fl.reflection == "true"
		d.tc.Reflection = &v
	}
	if err := d.tc.Validate(); err != nil {
		return &usageError{err}
	}
	opts, err := transport.ServerOptions(d.tc, d.log.With("component", "grpc"))
	if err != nil {
		return &usageError{err}
	}
	d.grpcOpts = opts
	return nil
}

// serve starts the gRPC server; health turns SERVING (when ready) once it
// listens and before "replicatord ready" is printed, so that a probe sent
// after that line never sees NOT_SERVING.
func (d *daemon) serve(stdout io.Writer, ready bool) error {
	tc, addr := d.tc, d.tc.Address
	// The metrics interceptors go first, so that they count every call,
	// refused ones included, with the code the client gets.
	g := grpc.NewServer(append(d.metrics.GRPCServerOptions(), d.grpcOpts...)...)
	ln, err := transport.Listen(tc)
	if err != nil {
		return err
	}
	d.grpc = g
	healthpb.RegisterHealthServer(g, d.health)
	api := server.New(d.store, d.sched, d.sched.Paced(), server.Options{
		Regions:      d.knownRegions,
		CloudReady:   d.cloudReady,
		Status:       d.status,
		Logger:       d.log.With("component", "api"),
		WatchStarted: d.metrics.WatchStarted,
		Policies: &server.PolicyOps{
			Reconciler: policiesView{d},
			Reload:     d.reloadFile,
			Source:     func() string { return absPath(d.fl.config) },
		},
	})
	api.Register(g)
	if tc.ReflectionEnabled() {
		reflection.Register(g)
	}
	d.metrics.InitGRPC(g)
	go func() {
		if err := g.Serve(ln); err != nil {
			d.failed <- fmt.Errorf("grpc: %w", err)
		}
	}()
	d.closers = append(d.closers, func() {
		d.health.Shutdown()
		api.Stop()
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(d.fl.shutdownGrace):
			g.Stop()
		}
	})
	if ready {
		d.setHealth(true)
	}
	fmt.Fprintf(stdout, "replicatord ready: serving gRPC on %s\n", addr)
	d.log.Info("ready", "listen", addr, "state", d.storePath())
	return nil
}

// adopt runs on a new state file: copies that a previous state file knew
// (it was lost or replaced) are found by their lineage tags and followed
// again instead of being made twice.
func (d *daemon) adopt(ctx context.Context, sched *scheduler.Scheduler) {
	known := d.knownRegions()
	if len(known) == 0 {
		return
	}
	regions := make([]string, 0, len(known))
	for r := range known {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := sched.Adopt(actx, regions)
	if err != nil {
		d.log.Warn("could not look for copies made under a previous state file", "err", err.Error())
	}
	if n > 0 {
		d.log.Warn("new state file: adopted copies made under a previous one", "jobs", n)
	}
}

// observeCall counts every ECS call and logs the failed ones with their
// RequestId (the scheduler adds which job it was for).
func (d *daemon) observeCall(c aliyun.Call) {
	code := c.Code
	if c.Err != nil && code == "" {
		code = "Error"
	}
	d.metrics.ObserveCall(c.Action, code, c.Duration)
	d.noteReach(c)
	if c.Err != nil {
		d.log.Debug("ECS call failed", "action", c.Action, "region", c.Region, "code", code, "http_status", c.HTTPStatus, "request_id", c.RequestID, "duration", c.Duration)
	}
}

func (d *daemon) jobStats() metrics.JobStats {
	var st metrics.JobStats
	sched, _ := d.leader()
	if sched == nil {
		return st // a follower runs no jobs
	}
	for _, c := range sched.LiveCounts() {
		st.Counts = append(st.Counts, metrics.JobCount{State: c.State, Region: c.Region, Policy: c.Policy, Count: c.Count})
	}
	if t, ok := sched.OldestQueued(); ok {
		st.OldestQueuedAge = time.Since(t)
	}
	st.Overdue = sched.Overdue()
	return st
}

// readiness answers /readyz from the gRPC health status of the whole
// server (""), the one grpc-health-probe and replctl ask.
func (d *daemon) readiness() (bool, string) {
	resp, err := d.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		return false, err.Error()
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		if err := d.cloudErr(); err != nil {
			return false, st.String() + ": " + err.Error()
		}
		return false, st.String()
	}
	return true, ""
}

// ecsActions are the ECS API actions the daemon calls, for the series
// preset at zero (TestECSActionsListed keeps the list complete).
var ecsActions = []string{
	cloud.ActionCancelCopyImage, cloud.ActionCopyImage, cloud.ActionDeleteImage,
	cloud.ActionDescribeImages, cloud.ActionDescribeRegions, cloud.ActionModifyImageAttribute,
	cloud.ActionModifyImageSharePermission, cloud.ActionTagResources,
}

// known lists what the metrics preset at zero for file: the ECS actions,
// the policies, and their routes and destination regions.
func (d *daemon) known(file *policy.File) metrics.Known {
	k := metrics.Known{Actions: ecsActions}
	routes, regions := map[[2]string]bool{}, map[string]bool{}
	for _, p := range file.Policies {
		kp := metrics.KnownPolicy{Name: p.Name, Interval: p.Interval, Enabled: p.Enabled}
		for _, dst := range p.Destinations {
			kp.Destinations = append(kp.Destinations, dst.Region)
		}
		k.Policies = append(k.Policies, kp)
		for _, dst := range p.Destinations {
			routes[[2]string{p.Source.Region, dst.Region}] = true
			regions[dst.Region] = true
		}
	}
	for r := range routes {
		k.Routes = append(k.Routes, r)
	}
	for r := range regions {
		k.Regions = append(k.Regions, r)
	}
	return k
}

// serveMetrics serves /metrics and the HTTP probes /healthz (liveness)
// and /readyz (gRPC health SERVING); a busy address fails the start.
func (d *daemon) serveMetrics(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.metrics.ServeListener(mctx, ln); err != nil {
			d.failed <- fmt.Errorf("metrics: %w", err)
		}
	}()
	d.closers = append(d.closers, func() { cancel(); <-done })
	d.log.Info("serving metrics and probes", "metrics", "http://"+ln.Addr().String()+"/metrics", "probes", "/healthz /readyz")
	return nil
}

// runRetention removes finished jobs past daemon.job_retention from store,
// at start and every hour, until the returned stop is called.
func (d *daemon) runRetention(store state.Store) (stop func()) {
	keep := d.file.Daemon.JobRetention
	if keep == 0 {
		d.log.Info("finished jobs are kept forever (daemon.job_retention: 0)")
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		state.RunRetention(ctx, store, state.RetentionOptions{
			Retention: keep,
			Logger:    d.log.With("component", "retention"),
			Removed:   d.metrics.ObserveJobsRemoved,
		})
	}()
	return func() { cancel(); <-done }
}

// newReconciler builds the reconcile loops over sched; the file's
// policies are given to them by activate, once their regions are checked.
func (d *daemon) newReconciler(sched *scheduler.Scheduler) *reconcile.Reconciler {
	return reconcile.New(sched.Paced(), sched, reconcile.Options{
		Logger: d.log.With("component", "reconcile"),
		Owner:  d.file.Daemon.Owner,
		OnRun: func(name string, err error, dur time.Duration) {
			d.metrics.ObserveReconcile(name, err)
		},
		OnDestination: d.metrics.ObserveDestination,
	})
}

// runReconciler runs d.rec until shutdown (bbolt; with etcd only the
// leader runs its own).
func (d *daemon) runReconciler() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.rec.Run(ctx) }()
	d.closers = append(d.closers, func() { cancel(); <-done })
}

// reload re-reads the config file on SIGHUP; a file with errors changes
// nothing.
func (d *daemon) reload(ctx context.Context) {
	added, removed, changed, err := d.reloadFile(ctx)
	if err != nil {
		d.log.Error("reload refused; the running policies stay as they were", "file", d.fl.config, "errors", err.Error())
		return
	}
	d.log.Info("policies reloaded", "added", added, "removed", removed, "changed", changed)
}

// reloadFile loads and checks the config file and, only if it is valid,
// applies its policies. Daemon, cloud and scheduler settings take effect
// at the next start; a change to them is logged.
func (d *daemon) reloadFile(ctx context.Context) (added, removed, changed []string, err error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if err := d.cloudErr(); err != nil {
		// Policies name regions, which cannot be checked yet: refused, not
		// accepted unchecked. The file is read again once the cloud answers.
		return nil, nil, nil, fmt.Errorf("policies cannot be loaded until the cloud answers and their regions can be checked (%v): %w", err, errdefs.ErrUnavailable)
	}
	f, err := policy.Load(d.fl.config)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := f.ValidateEnv(d.env()); err != nil {
		return nil, nil, nil, err
	}
	if !reflect.DeepEqual(f.Store, d.file.Store) {
		// Another store is another set of jobs (and with etcd, another
		// cluster to elect a leader on): only a restart may switch.
		return nil, nil, nil, fmt.Errorf("the store section changed; a store change needs a restart (the running daemon keeps %s): %w", storeName(d.file.Store), errdefs.ErrFailedPrecondition)
	}
	if f.Daemon != d.file.Daemon || !reflect.DeepEqual(f.Cloud, d.file.Cloud) {
		d.log.Warn("daemon and cloud settings changed in the file; they take effect at the next start")
	}
	added, removed, changed = policy.Diff(d.file, f)
	// A changed policy that names a cancelled source image (source.images.ids)
	// asks for it again: lift its tombstones before the policy runs.
	for _, name := range changed {
		for i := range f.Policies {
			if p := &f.Policies[i]; p.Name == name {
				if n, err := d.sched.LiftCancels(ctx, name, p.Source.Images.IDs, "policy "+name+" changed and names the image"); err != nil {
					return nil, nil, nil, err
				} else if n > 0 {
					d.log.Info("policy change lifted cancels", "policy", name, "pairs", n)
				}
			}
		}
	}
	d.rec.SetPolicies(f)
	if _, rec := d.leader(); rec != nil && rec != d.rec {
		rec.SetPolicies(f)
	}
	d.file = f
	d.noteConfig(ctx)
	d.metrics.Preset(d.known(f))
	return added, removed, changed, nil
}

// shutdown stops everything in reverse order of start.
func (d *daemon) shutdown() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

func pick(flag, file string) string {
	if flag != "" {
		return flag
	}
	return file
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	switch level {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q is not text or json", format)
}

// corruptRecord reports a state record that does not decode: the store
// skips it in listings, watches and the scheduler's start. Called inside a
// store transaction: it only logs and sets a gauge.
func (d *daemon) corruptRecord(key string, err error) {
	d.log.Error("state file record does not decode; it is skipped (run replicatord --check-state on a copy of the file for every problem)",
		"record", key, "error", err.Error())
	if d.local != nil {
		d.metrics.SetCorruptRecords(d.local.CorruptRecords())
	}
}

// localStore is what the daemon asks of a store kept in one local file
// (bbolt, *state.DB) beyond state.Store: where the file is, and a scan of
// every record for undecodable ones. A store without a local file (etcd,
// issue 14) offers none of it, so the daemon holds it apart from Store.
type localStore interface {
	Path() string
	Scan(ctx context.Context) (records, corrupt int, err error)
	CorruptRecords() int
}

var _ localStore = (*state.DB)(nil)

// storePath is the state file's path, or "" for a store without one.
func (d *daemon) storePath() string {
	if d.local == nil {
		return ""
	}
	return d.local.Path()
}

// scanState reads every record of the state file once, in the background,
// so that an undecodable record is reported at start and not only when a
// listing meets it. It never delays readiness.
func (d *daemon) scanState() {
	if d.local == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		records, corrupt, err := d.local.Scan(ctx)
		d.metrics.SetCorruptRecords(d.local.CorruptRecords())
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Error("state file scan failed", "error", err.Error())
		case corrupt > 0:
			d.log.Error("state file scan: some records do not decode and are skipped", "records", records, "corrupt", corrupt, "state", d.local.Path())
		case err == nil:
			d.log.Debug("state file scan: every record decodes", "records", records)
		}
	}()
	d.closers = append(d.closers, func() { cancel(); <-done })
}

// checkState runs bbolt's consistency check on a state file.
func checkState(path string, stdout, stderr io.Writer) int {
	if err := state.Check(path); err != nil {
		fmt.Fprintf(stderr, "replicatord: %s: %v\n", path, err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return exitOK
}

var _ cloud.Provider = (*aliyun.Provider)(nil)

// storeName names a store setting for messages: never credentials (they
// are not in the file).
func storeName(s policy.Store) string {
	if s.Backend == policy.BackendEtcd {
		return fmt.Sprintf("etcd %s under %s", strings.Join(s.Etcd.Endpoints, ","), s.Etcd.Prefix)
	}
	return "bbolt"
}
