package metrics

import (
	"strings"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/replicatord/replicatord/internal/job"
)

const namespace = "replicatord"

// CopyBuckets are the copy-duration histogram bounds in seconds: ECS
// copies take from about a minute to a day.
var CopyBuckets = []float64{
	60, 120, 300, 600, 900, 1800, 2700, 3600, 5400, 7200,
	3 * 3600, 4 * 3600, 6 * 3600, 8 * 3600, 12 * 3600, 24 * 3600,
}

// CallBuckets are the ECS API call duration bounds in seconds.
var CallBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// CodeOK is the result code of a successful ECS call.
const CodeOK = "OK"

// Metrics holds replicatord's collectors and their registry.
type Metrics struct {
	reg *prometheus.Registry

	copyDuration  *prometheus.HistogramVec
	queueDepth    *prometheus.GaugeVec
	slotsInUse    *prometheus.GaugeVec
	slotLimit     *prometheus.GaugeVec
	apiCalls      *prometheus.CounterVec
	apiDuration   *prometheus.HistogramVec
	throttles     *prometheus.CounterVec
	reconcileRuns *prometheus.CounterVec
	reconcileErrs *prometheus.CounterVec
	destErrs      *prometheus.CounterVec
	transitions   *prometheus.CounterVec
	cancelRetries *prometheus.CounterVec
	refused       *prometheus.CounterVec
	watchers      prometheus.Gauge
	corrupt       prometheus.Gauge
	reloads       *prometheus.CounterVec
	jobsRemoved   prometheus.Counter
	buildInfo     *prometheus.GaugeVec
	lastRun       *prometheus.GaugeVec
	lastSuccess   *prometheus.GaugeVec
	interval      *prometheus.GaugeVec

	jobs *jobCollector
	grpc *grpcprom.ServerMetrics

	mu sync.Mutex
	// slots gives a region's copy-slot limit; copy_slots_limit is set from
	// it wherever the queue gauges are.
	slots func(region string) int
	// regions are the destination regions whose gauges exist.
	regions map[string]bool
	// policies are the policies whose series exist (see Preset).
	policies map[string]bool
	// ready answers /readyz (SetReadiness).
	ready func() (bool, string)
	// now is the clock of the reconcile timestamps (time.Now).
	now func() time.Time
}

// New creates the metrics and registers them, with the Go runtime and
// process collectors, on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		copyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "copy_duration_seconds",
			Help:    "Time from a copy first seen Creating to Available (ECS's own copy time, queueing excluded), by route.",
			Buckets: CopyBuckets,
		}, []string{"source_region", "destination_region"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_depth",
			Help: "Jobs queued in replicatord for a copy slot, by destination region.",
		}, []string{"region"}),
		slotsInUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "copy_slots_in_use",
			Help: "Copies in flight at ECS, by destination region.",
		}, []string{"region"}),
		slotLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "copy_slots_limit",
			Help: "Concurrent copies allowed, by destination region.",
		}, []string{"region"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ecs_api_calls_total",
			Help: "ECS API calls by action and result code (OK for success, else the ECS error code).",
		}, []string{"action", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "ecs_api_call_duration_seconds",
			Help:    "ECS API call latency by action, failed calls included.",
			Buckets: CallBuckets,
		}, []string{"action"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ecs_throttles_total",
			Help: "ECS API calls refused by flow control, by action.",
		}, []string{"action"}),
		reconcileRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reconcile_runs_total",
			Help: "Policy reconcile passes, by policy.",
		}, []string{"policy"}),
		destErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reconcile_destination_errors_total",
			Help: "Failed listings of a policy's copies in a destination (the destination is skipped and retried alone), by policy and region.",
		}, []string{"policy", "region"}),
		reconcileErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reconcile_errors_total",
			Help: "Policy reconcile passes that failed, by policy.",
		}, []string{"policy"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "job_transitions_total",
			Help: "Job state transitions, by previous and new state.",
		}, []string{"from", "to"}),
		cancelRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "cancel_retries_total",
			Help: "Cancels (and removals of a failing job's copy) to be tried again, by the ECS error code that stopped them; a cancel has no retry budget.",
		}, []string{"code"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ownership_refusals_total",
			Help: "ECS calls that change an image not sent because the state store does not prove the image is this installation's copy, by action.",
		}, []string{"action"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "watchers",
			Help: "Watch streams currently connected.",
		}),
		corrupt: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "state_corrupt_records",
			Help: "Records of the state file found not to decode since start (skipped by listings, watches and the scheduler; replicatord --check-state names them).",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "credential_reloads_total",
			Help: "Reloads of changed TLS or token files, by kind (tls, tokens) and result (ok, error: the previous material stays in use).",
		}, []string{"kind", "result"}),
		jobsRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "jobs_removed_total",
			Help: "Finished jobs removed from the state file after daemon.job_retention.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help: "Always 1; the labels tell which build of replicatord is running.",
		}, []string{"version", "go_version", "revision"}),
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "reconcile_last_run_timestamp_seconds",
			Help: "When a policy's last reconcile pass ended, failed or not (Unix seconds); the time the policy was loaded until its first pass.",
		}, []string{"policy"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "reconcile_last_success_timestamp_seconds",
			Help: "When a policy's last successful reconcile pass ended (Unix seconds); the time the policy was loaded until its first success.",
		}, []string{"policy"}),
		interval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_interval_seconds",
			Help: "The reconcile interval of each enabled policy; a disabled policy has none.",
		}, []string{"policy"}),
		jobs:     newJobCollector(),
		regions:  map[string]bool{},
		policies: map[string]bool{},
		now:      time.Now,
	}
	m.grpc = newGRPCMetrics()
	m.jobs.regions = m.knownRegions
	for _, kind := range []string{"tls", "tokens"} {
		for _, result := range []string{"ok", "error"} {
			m.reloads.WithLabelValues(kind, result)
		}
	}
	m.reg.MustRegister(
		m.copyDuration, m.queueDepth, m.slotsInUse, m.slotLimit,
		m.apiCalls, m.apiDuration, m.throttles,
		m.reconcileRuns, m.reconcileErrs, m.destErrs, m.transitions, m.cancelRetries, m.refused, m.watchers, m.corrupt, m.jobs,
		m.reloads, m.jobsRemoved,
		m.buildInfo, m.lastRun, m.lastSuccess, m.interval, m.grpc,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every legal transition exists at zero, so that an alert on
	// increase(replicatord_job_transitions_total{to="failed"}[...]) sees
	// the first failure instead of the series appearing at 1.
	for _, from := range allStates {
		for _, to := range allStates {
			if from != to && job.CheckTransition(from, to) == nil {
				m.transitions.WithLabelValues(stateLabel(from), stateLabel(to))
			}
		}
	}
	return m
}

var allStates = []job.State{
	job.StateQueued, job.StateSubmitting, job.StateWaiting, job.StateCopying,
	job.StateSucceeded, job.StateFailed, job.StateCancelling, job.StateCancelled,
}

// SetBuildInfo sets replicatord_build_info; a new call replaces the old
// labels. Empty values become "unknown".
func (m *Metrics) SetBuildInfo(version, goVersion, revision string) {
	if m == nil {
		return
	}
	m.buildInfo.Reset()
	label := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s[:min(len(s), maxLabelLen)]
	}
	m.buildInfo.WithLabelValues(label(version), label(goVersion), label(revision)).Set(1)
}

// Registry is the registry everything is registered on, for callers that
// add collectors of their own (e.g. gRPC server metrics).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveCopy records a finished copy's duration on its route.
func (m *Metrics) ObserveCopy(source, destination string, d time.Duration) {
	if m == nil {
		return
	}
	m.copyDuration.WithLabelValues(source, destination).Observe(d.Seconds())
}

// SetQueue sets a destination region's queued jobs and slots in use.
func (m *Metrics) SetQueue(region string, queued, inUse int) {
	if m == nil {
		return
	}
	m.queueDepth.WithLabelValues(region).Set(float64(queued))
	m.slotsInUse.WithLabelValues(region).Set(float64(inUse))
	m.mu.Lock()
	m.regions[region] = true
	slots := m.slots
	m.mu.Unlock()
	if slots != nil {
		m.slotLimit.WithLabelValues(region).Set(float64(slots(region)))
	}
}

// SetSlotLimits installs the function that gives a region's copy-slot
// limit (the scheduler's Slots). From then on copy_slots_limit is set for
// every region that has queue gauges, and kept with them.
func (m *Metrics) SetSlotLimits(f func(region string) int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.slots = f
	regions := make([]string, 0, len(m.regions))
	for r := range m.regions {
		regions = append(regions, r)
	}
	m.mu.Unlock()
	if f == nil {
		return
	}
	for _, r := range regions {
		m.slotLimit.WithLabelValues(r).Set(float64(f(r)))
	}
}

func (m *Metrics) knownRegions() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.regions))
	for r := range m.regions {
		out = append(out, r)
	}
	return out
}

// SetSlotLimit sets how many concurrent copies a region allows.
func (m *Metrics) SetSlotLimit(region string, limit int) {
	if m == nil {
		return
	}
	m.slotLimit.WithLabelValues(region).Set(float64(limit))
}

// ObserveCall records one ECS API call: code is CodeOK (or "") on success,
// the ECS error code otherwise.
func (m *Metrics) ObserveCall(action, code string, d time.Duration) {
	if m == nil {
		return
	}
	action = sanitize(action, "Unknown")
	m.apiCalls.WithLabelValues(action, sanitize(code, CodeOK)).Inc()
	m.apiDuration.WithLabelValues(action).Observe(d.Seconds())
}

// ObserveThrottle records that ECS throttled a call of action.
func (m *Metrics) ObserveThrottle(action string) {
	if m == nil {
		return
	}
	m.throttles.WithLabelValues(sanitize(action, "Unknown")).Inc()
}

// ObserveDestination records one listing of a policy's copies in a
// destination region; only failures count.
func (m *Metrics) ObserveDestination(policy, region string, err error) {
	if m == nil || err == nil {
		return
	}
	m.destErrs.WithLabelValues(policy, region).Inc()
}

// ObserveReconcile records one reconcile pass of policy and whether it
// failed.
func (m *Metrics) ObserveReconcile(policy string, err error) {
	if m == nil {
		return
	}
	m.reconcileRuns.WithLabelValues(policy).Inc()
	now := float64(m.now().UnixNano()) / 1e9
	m.lastRun.WithLabelValues(policy).Set(now)
	m.mu.Lock()
	fresh := !m.policies[policy]
	m.policies[policy] = true
	m.mu.Unlock()
	if err != nil {
		if fresh { // never succeeded since it was seen first: now
			m.lastSuccess.WithLabelValues(policy).Set(now)
		}
		m.reconcileErrs.WithLabelValues(policy).Inc()
	} else {
		m.lastSuccess.WithLabelValues(policy).Set(now)
	}
}

// SetCorruptRecords sets how many state-file records were found not to
// decode.
func (m *Metrics) SetCorruptRecords(n int) {
	if m == nil {
		return
	}
	m.corrupt.Set(float64(n))
}

// ObserveTransition counts one job state transition.
func (m *Metrics) ObserveTransition(from, to job.State) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(stateLabel(from), stateLabel(to)).Inc()
}

// WatchStarted counts a connected watcher until the returned func is
// called; calling it more than once has no further effect.
func (m *Metrics) WatchStarted() (done func()) {
	if m == nil {
		return func() {}
	}
	m.watchers.Inc()
	var once sync.Once
	return func() { once.Do(m.watchers.Dec) }
}

// ObserveReload records one reload of changed TLS or token files; kind is
// "tls" or "tokens" (transport.ReloadTLS, transport.ReloadTokens).
func (m *Metrics) ObserveReload(kind string, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(sanitize(kind, "unknown"), result).Inc()
}

// ObserveJobsRemoved counts finished jobs removed after their retention.
func (m *Metrics) ObserveJobsRemoved(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.jobsRemoved.Add(float64(n))
}

// SetJobSource installs the callback asked for job counts at every scrape
// (see JobStats). It must be fast and must not call back into Metrics.
func (m *Metrics) SetJobSource(f func() JobStats) {
	if m == nil {
		return
	}
	m.jobs.set(f)
}

// Known is what exists before its first event: the ECS actions the
// daemon calls, the loaded policies, and the copy routes and destination
// regions they name.
type Known struct {
	Actions  []string
	Policies []KnownPolicy
	// Routes are [source, destination] pairs.
	Routes [][2]string
	// Regions are destination regions.
	Regions []string
}

// KnownPolicy is a loaded policy: its interval is exported while it is
// enabled.
type KnownPolicy struct {
	Name     string
	Interval time.Duration
	Enabled  bool
	// Destinations are its destination regions.
	Destinations []string
}

// Preset makes series exist at zero before their first event, so that
// increase() and rate() alerts see the first failure (a counter that
// appears at 1 has no increase): per action the calls with code OK and the
// throttles; per policy the reconcile runs and errors, the last-run
// timestamps (set to now if the policy has none yet) and the interval; per
// route the copy-duration histogram; per region the queue and slot gauges
// at zero (only where they do not exist yet, so a preset never hides a
// real value). Policies no longer in k lose their series. Safe to call
// again after a reload.
func (m *Metrics) Preset(k Known) {
	if m == nil {
		return
	}
	for _, a := range k.Actions {
		a = sanitize(a, "Unknown")
		m.apiCalls.WithLabelValues(a, CodeOK)
		m.apiDuration.WithLabelValues(a)
		m.throttles.WithLabelValues(a)
	}
	now := float64(m.now().UnixNano()) / 1e9
	keep := map[string]bool{}
	for _, p := range k.Policies {
		keep[p.Name] = true
		m.reconcileRuns.WithLabelValues(p.Name)
		m.reconcileErrs.WithLabelValues(p.Name)
		for _, r := range p.Destinations {
			m.destErrs.WithLabelValues(p.Name, r)
		}
		m.mu.Lock()
		fresh := !m.policies[p.Name]
		m.policies[p.Name] = true
		m.mu.Unlock()
		if fresh {
			m.lastRun.WithLabelValues(p.Name).Set(now)
			m.lastSuccess.WithLabelValues(p.Name).Set(now)
		}
		if p.Enabled {
			m.interval.WithLabelValues(p.Name).Set(p.Interval.Seconds())
		} else {
			m.interval.DeleteLabelValues(p.Name)
		}
	}
	m.forgetPoliciesExcept(keep)
	for _, r := range k.Routes {
		m.copyDuration.WithLabelValues(r[0], r[1])
	}
	m.mu.Lock()
	var fresh []string
	for _, r := range k.Regions {
		if !m.regions[r] {
			m.regions[r] = true
			fresh = append(fresh, r)
		}
	}
	slots := m.slots
	m.mu.Unlock()
	for _, r := range fresh {
		m.queueDepth.WithLabelValues(r)
		m.slotsInUse.WithLabelValues(r)
		if slots != nil {
			m.slotLimit.WithLabelValues(r).Set(float64(slots(r)))
		}
	}
}

// forgetPoliciesExcept drops the per-policy series of policies not in keep
// (removed by a reload), so an alert on a policy that stopped running does
// not fire for one that was removed on purpose.
func (m *Metrics) forgetPoliciesExcept(keep map[string]bool) {
	m.mu.Lock()
	var gone []string
	for p := range m.policies {
		if !keep[p] {
			gone = append(gone, p)
			delete(m.policies, p)
		}
	}
	m.mu.Unlock()
	for _, p := range gone {
		l := prometheus.Labels{"policy": p}
		m.reconcileRuns.Delete(l)
		m.reconcileErrs.Delete(l)
		m.destErrs.DeletePartialMatch(l)
		m.lastRun.Delete(l)
		m.lastSuccess.Delete(l)
		m.interval.Delete(l)
	}
}

// ForgetRegion drops a region's queue gauges, e.g. when a policy reload
// removes its last reference.
func (m *Metrics) ForgetRegion(region string) {
	if m == nil {
		return
	}
	m.queueDepth.DeleteLabelValues(region)
	m.slotsInUse.DeleteLabelValues(region)
	m.slotLimit.DeleteLabelValues(region)
	m.mu.Lock()
	delete(m.regions, region)
	m.mu.Unlock()
}

func stateLabel(s job.State) string { return strings.ToLower(s.String()) }

// maxLabelLen caps label values that come from the wire.
const maxLabelLen = 64

// sanitize keeps a wire-supplied label value (an ECS action or error code)
// to a bounded alphabet and length, so a malformed response can neither
// inject odd text into the exposition nor blow up cardinality with long
// unique strings. Empty becomes def.
func sanitize(s, def string) string {
	if s == "" {
		return def
	}
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxLabelLen {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
