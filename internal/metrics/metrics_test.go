package metrics

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/replicatord/replicatord/internal/job"
)

// scrape GETs url over real HTTP and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// value finds the sample of family name whose labels include want, NaN
// when there is none. Histograms yield their sample count.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return math.NaN()
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return math.NaN()
}

type L = map[string]string

func TestScrapeSeesCountersMove(t *testing.T) {
	m := New()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	before := scrape(t, srv.URL)
	if v := value(before, "replicatord_ecs_api_calls_total", L{"action": "CopyImage"}); !math.IsNaN(v) {
		t.Fatalf("CopyImage calls before any call: %v", v)
	}

	m.ObserveCall("CopyImage", "", 300*time.Millisecond)
	m.ObserveCall("CopyImage", CodeOK, 200*time.Millisecond)
	m.ObserveCall("CopyImage", "Throttling.User", 50*time.Millisecond)
	m.ObserveThrottle("CopyImage")
	m.ObserveCopy("cn-hangzhou", "ap-southeast-1", 42*time.Minute)
	m.SetQueue("ap-southeast-1", 7, 5)
	m.SetSlotLimit("ap-southeast-1", 5)
	m.ObserveReconcile("base-images", nil)
	m.ObserveReconcile("base-images", errors.New("boom"))
	m.ObserveTransition(job.StateQueued, job.StateSubmitting)
	m.ObserveTransition(job.StateQueued, job.StateSubmitting)
	done := m.WatchStarted()
	m.WatchStarted()
	done()
	done() // idempotent
	m.SetCorruptRecords(2)
	if v := value(before, "replicatord_credential_reloads_total", L{"kind": "tls", "result": "error"}); v != 0 {
		t.Errorf("TLS reload errors before any reload: %v, want a series at 0", v)
	}
	m.ObserveReload("tls", nil)
	m.ObserveReload("tokens", errors.New("bad line"))
	m.ObserveJobsRemoved(3)
	m.ObserveJobsRemoved(0)
	m.ObserveDestination("base-images", "cn-beijing", errors.New("503"))
	m.ObserveDestination("base-images", "cn-beijing", nil) // a success counts nothing

	after := scrape(t, srv.URL)
	checks := []struct {
		name   string
		labels L
		want   float64
	}{
		{"replicatord_ecs_api_calls_total", L{"action": "CopyImage", "code": "OK"}, 2},
		{"replicatord_ecs_api_calls_total", L{"action": "CopyImage", "code": "Throttling.User"}, 1},
		{"replicatord_ecs_api_call_duration_seconds", L{"action": "CopyImage"}, 3},
		{"replicatord_ecs_throttles_total", L{"action": "CopyImage"}, 1},
		{"replicatord_copy_duration_seconds", L{"source_region": "cn-hangzhou", "destination_region": "ap-southeast-1"}, 1},
		{"replicatord_queue_depth", L{"region": "ap-southeast-1"}, 7},
		{"replicatord_copy_slots_in_use", L{"region": "ap-southeast-1"}, 5},
		{"replicatord_copy_slots_limit", L{"region": "ap-southeast-1"}, 5},
		{"replicatord_reconcile_runs_total", L{"policy": "base-images"}, 2},
		{"replicatord_reconcile_errors_total", L{"policy": "base-images"}, 1},
		{"replicatord_reconcile_destination_errors_total", L{"policy": "base-images", "region": "cn-beijing"}, 1},
		{"replicatord_job_transitions_total", L{"from": "queued", "to": "submitting"}, 2},
		{"replicatord_watchers", nil, 1},
		{"replicatord_state_corrupt_records", nil, 2},
		{"replicatord_oldest_queued_job_age_seconds", nil, 0},
		{"replicatord_credential_reloads_total", L{"kind": "tls", "result": "ok"}, 1},
		{"replicatord_credential_reloads_total", L{"kind": "tls", "result": "error"}, 0},
		{"replicatord_credential_reloads_total", L{"kind": "tokens", "result": "error"}, 1},
		{"replicatord_jobs_removed_total", nil, 3},
	}
	for _, c := range checks {
		if got := value(after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Runtime and process collectors are there too.
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := after[name]; !ok {
			t.Errorf("%s missing from the scrape", name)
		}
	}
}

func TestCopyHistogramSpansAMinuteToADay(t *testing.T) {
	m := New()
	m.ObserveCopy("cn-hangzhou", "eu-central-1", 90*time.Second)
	m.ObserveCopy("cn-hangzhou", "eu-central-1", 30*time.Hour)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var h *dto.Histogram
	for _, f := range fams {
		if f.GetName() == "replicatord_copy_duration_seconds" {
			h = f.GetMetric()[0].GetHistogram()
		}
	}
	if h == nil {
		t.Fatal("no copy histogram")
	}
	b := h.GetBucket()
	if b[0].GetUpperBound() != 60 || b[len(b)-1].GetUpperBound() != 86400 {
		t.Fatalf("buckets run %v..%v, want 60..86400", b[0].GetUpperBound(), b[len(b)-1].GetUpperBound())
	}
	// 90 s falls in le=120; 30 h only in +Inf.
	if b[0].GetCumulativeCount() != 0 || b[1].GetCumulativeCount() != 1 || b[len(b)-1].GetCumulativeCount() != 1 || h.GetSampleCount() != 2 {
		t.Fatalf("bucket counts wrong: %v", h)
	}
}

func TestJobSourceAskedAtScrape(t *testing.T) {
	m := New()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	stats := JobStats{
		Counts: []JobCount{
			{State: job.StateQueued, Region: "ap-southeast-1", Policy: "base", Count: 3},
			{State: job.StateCopying, Region: "ap-southeast-1", Policy: "base", Count: 2},
			{State: job.StateQueued, Region: "ap-southeast-1", Policy: "base", Count: 4}, // duplicate: summed
			{State: job.StateFailed, Region: "eu-central-1", Policy: "", Count: 1},
		},
		OldestQueuedAge: 90 * time.Second,
	}
	calls := 0
	m.SetJobSource(func() JobStats { calls++; return stats })

	fams := scrape(t, srv.URL)
	if calls != 1 {
		t.Fatalf("source called %d times for one scrape", calls)
	}
	for _, c := range []struct {
		labels L
		want   float64
	}{
		{L{"state": "queued", "region": "ap-southeast-1", "policy": "base"}, 7},
		{L{"state": "copying", "region": "ap-southeast-1", "policy": "base"}, 2},
		{L{"state": "failed", "region": "eu-central-1"}, 1},
	} {
		if got := value(fams, "replicatord_jobs", c.labels); got != c.want {
			t.Errorf("replicatord_jobs%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if got := value(fams, "replicatord_oldest_queued_job_age_seconds", nil); got != 90 {
		t.Errorf("oldest queued age %v, want 90", got)
	}

	// The queue drains: the series go away rather than linger.
	stats = JobStats{Counts: []JobCount{{State: job.StateSucceeded, Region: "ap-southeast-1", Policy: "base", Count: 9}}}
	fams = scrape(t, srv.URL)
	if got := value(fams, "replicatord_jobs", L{"state": "queued"}); !math.IsNaN(got) {
		t.Errorf("queued series still exported: %v", got)
	}
	if got := value(fams, "replicatord_jobs", L{"state": "succeeded"}); got != 9 {
		t.Errorf("succeeded = %v, want 9", got)
	}
	if got := value(fams, "replicatord_oldest_queued_job_age_seconds", nil); got != 0 {
		t.Errorf("oldest queued age with nothing queued = %v", got)
	}
}

func TestLint(t *testing.T) {
	m := New()
	m.SetJobSource(func() JobStats {
		return JobStats{Counts: []JobCount{{State: job.StateQueued, Region: "r", Policy: "p", Count: 1}}}
	})
	m.ObserveCall("DescribeImages", CodeOK, time.Second)
	m.ObserveThrottle("DescribeImages")
	m.ObserveCopy("a", "b", time.Hour)
	m.SetQueue("b", 1, 1)
	m.SetSlotLimit("b", 2)
	m.ObserveReconcile("p", errors.New("x"))
	m.ObserveDestination("p", "b", errors.New("x"))
	m.ObserveTransition(job.StateQueued, job.StateSubmitting)
	m.WatchStarted()
	m.ObserveReload("tls", errors.New("x"))
	m.ObserveJobsRemoved(2)
	m.SetBuildInfo("v0", "go1.26", "deadbeef")
	m.Preset(Known{Policies: []KnownPolicy{{Name: "p", Interval: time.Minute, Enabled: true}}, Regions: []string{"b"}})

	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	problems, err = testutil.CollectAndLint(m.jobs)
	if err != nil || len(problems) != 0 {
		t.Errorf("job collector lint: %v %v", problems, err)
	}
	// Every metric of ours carries the prefix.
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, f := range fams {
		n := f.GetName()
		if !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") && !strings.HasPrefix(n, "promhttp_") && !strings.HasPrefix(n, "grpc_server_") {
			ours = append(ours, n)
		}
	}
	sort.Strings(ours)
	if len(ours) != 22 {
		t.Errorf("%d own metrics: %v", len(ours), ours)
	}
	for _, n := range ours {
		if !strings.HasPrefix(n, "replicatord_") {
			t.Errorf("metric %s lacks the replicatord_ prefix", n)
		}
	}
}

func TestWireLabelsSanitised(t *testing.T) {
	m := New()
	m.ObserveCall("Copy Image\n", "Bad\"Code{x=\"1\"}"+strings.Repeat("Z", 100), time.Millisecond)
	m.ObserveCall("", "", time.Millisecond)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range fams {
		if f.GetName() != "replicatord_ecs_api_calls_total" {
			continue
		}
		for _, mm := range f.GetMetric() {
			for _, lp := range mm.GetLabel() {
				seen[lp.GetName()+"="+lp.GetValue()] = true
				if len(lp.GetValue()) > maxLabelLen || strings.ContainsAny(lp.GetValue(), " \n\"{}=") {
					t.Errorf("unsanitised label %s=%q", lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	if !seen["action=Copy_Image_"] || !seen["action=Unknown"] || !seen["code=OK"] {
		t.Errorf("labels seen: %v", seen)
	}
}

func TestPresetMakesZeroSeries(t *testing.T) {
	m := New()
	clk := time.Unix(1_700_000_000, 0)
	m.now = func() time.Time { return clk }
	m.SetSlotLimits(func(r string) int {
		if r == "ap-southeast-1" {
			return 2
		}
		return 5
	})
	m.SetQueue("cn-beijing", 4, 5) // a real value before the preset
	m.Preset(Known{
		Actions: []string{"CopyImage", "DescribeImages"},
		Policies: []KnownPolicy{
			{Name: "base", Interval: 10 * time.Minute, Enabled: true, Destinations: []string{"ap-southeast-1"}},
			{Name: "off", Interval: time.Hour, Enabled: false},
		},
		Routes:  [][2]string{{"cn-hangzhou", "ap-southeast-1"}},
		Regions: []string{"ap-southeast-1", "cn-beijing"},
	})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	for _, c := range []struct {
		name   string
		labels L
		want   float64
	}{
		{"replicatord_ecs_api_calls_total", L{"action": "CopyImage", "code": "OK"}, 0},
		{"replicatord_ecs_api_calls_total", L{"action": "DescribeImages", "code": "OK"}, 0},
		{"replicatord_ecs_throttles_total", L{"action": "CopyImage"}, 0},
		{"replicatord_ecs_api_call_duration_seconds", L{"action": "CopyImage"}, 0},
		{"replicatord_reconcile_runs_total", L{"policy": "base"}, 0},
		{"replicatord_reconcile_errors_total", L{"policy": "off"}, 0},
		{"replicatord_reconcile_destination_errors_total", L{"policy": "base", "region": "ap-southeast-1"}, 0},
		{"replicatord_reconcile_last_run_timestamp_seconds", L{"policy": "base"}, 1_700_000_000},
		{"replicatord_reconcile_last_success_timestamp_seconds", L{"policy": "base"}, 1_700_000_000},
		{"replicatord_policy_interval_seconds", L{"policy": "base"}, 600},
		{"replicatord_copy_duration_seconds", L{"source_region": "cn-hangzhou", "destination_region": "ap-southeast-1"}, 0},
		{"replicatord_queue_depth", L{"region": "ap-southeast-1"}, 0},
		{"replicatord_copy_slots_in_use", L{"region": "ap-southeast-1"}, 0},
		{"replicatord_copy_slots_limit", L{"region": "ap-southeast-1"}, 2},
		{"replicatord_copy_slots_limit", L{"region": "cn-beijing"}, 5},
		// The preset does not overwrite what the scheduler reported.
		{"replicatord_queue_depth", L{"region": "cn-beijing"}, 4},
		{"replicatord_copy_slots_in_use", L{"region": "cn-beijing"}, 5},
		{"replicatord_copy_overdue_seconds", L{"region": "ap-southeast-1"}, 0},
		// Every legal transition exists from the start, an illegal one not.
		{"replicatord_job_transitions_total", L{"from": "copying", "to": "failed"}, 0},
		{"replicatord_job_transitions_total", L{"from": "failed", "to": "queued"}, 0},
	} {
		if got := value(byName, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(byName, "replicatord_policy_interval_seconds", L{"policy": "off"}); !math.IsNaN(got) {
		t.Errorf("a disabled policy exports an interval (%v): the stopped-running alert would fire for it", got)
	}
	if got := value(byName, "replicatord_job_transitions_total", L{"from": "succeeded", "to": "queued"}); !math.IsNaN(got) {
		t.Errorf("illegal transition succeeded>queued preset: %v", got)
	}

	// A run moves the timestamps; a later preset (a reload) keeps them and
	// drops the policies no longer loaded.
	clk = clk.Add(time.Minute)
	m.ObserveReconcile("base", errors.New("boom"))
	clk = clk.Add(time.Minute)
	m.Preset(Known{Policies: []KnownPolicy{{Name: "base", Interval: 5 * time.Minute, Enabled: true}}})
	fams, _ = m.Registry().Gather()
	byName = map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if got := value(byName, "replicatord_reconcile_last_run_timestamp_seconds", L{"policy": "base"}); got != 1_700_000_060 {
		t.Errorf("last run after a failed run and a reload = %v, want 1700000060", got)
	}
	if got := value(byName, "replicatord_reconcile_last_success_timestamp_seconds", L{"policy": "base"}); got != 1_700_000_000 {
		t.Errorf("last success after a failed run = %v, want the load time 1700000000", got)
	}
	if got := value(byName, "replicatord_policy_interval_seconds", L{"policy": "base"}); got != 300 {
		t.Errorf("interval after the reload = %v, want 300", got)
	}
	for _, name := range []string{"replicatord_reconcile_runs_total", "replicatord_reconcile_last_run_timestamp_seconds"} {
		if got := value(byName, name, L{"policy": "off"}); !math.IsNaN(got) {
			t.Errorf("%s of a removed policy still exported: %v", name, got)
		}
	}

	m.ForgetRegion("cn-beijing")
	n, _ := testutil.GatherAndCount(m.Registry(), "replicatord_queue_depth", "replicatord_copy_slots_in_use", "replicatord_copy_slots_limit", "replicatord_copy_overdue_seconds")
	if n != 4 { // ap-southeast-1's four
		t.Errorf("%d region series after ForgetRegion(cn-beijing), want 4", n)
	}
}

func TestSlotLimitFollowsQueueGauges(t *testing.T) {
	m := New()
	m.SetQueue("eu-central-1", 1, 0) // before the limits are known
	m.SetSlotLimits(func(string) int { return 3 })
	m.SetQueue("us-west-1", 0, 1)
	for _, r := range []string{"eu-central-1", "us-west-1"} {
		if got := testutil.ToFloat64(m.slotLimit.WithLabelValues(r)); got != 3 {
			t.Errorf("copy_slots_limit{region=%s} = %v, want 3", r, got)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	m := New()
	m.SetBuildInfo("v1.2.3", "go1.26.8", "")
	m.SetBuildInfo("v1.2.4", "go1.26.8", "abc123")
	n, err := testutil.GatherAndCount(m.Registry(), "replicatord_build_info")
	if err != nil || n != 1 {
		t.Fatalf("build_info series: %d (%v), want 1 (a new call replaces the labels)", n, err)
	}
	if got := testutil.ToFloat64(m.buildInfo.WithLabelValues("v1.2.4", "go1.26.8", "abc123")); got != 1 {
		t.Errorf("build_info = %v, want 1", got)
	}
}

func TestOverdueByRegion(t *testing.T) {
	m := New()
	m.Preset(Known{Regions: []string{"a", "b"}})
	m.SetJobSource(func() JobStats {
		return JobStats{Overdue: map[string]time.Duration{"b": 90 * time.Second, "c": -time.Second}}
	})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	for r, want := range map[string]float64{"a": 0, "b": 90, "c": 0} {
		if got := value(byName, "replicatord_copy_overdue_seconds", L{"region": r}); got != want {
			t.Errorf("overdue{region=%s} = %v, want %v", r, got, want)
		}
	}
}

func TestNilMetricsIsANoop(t *testing.T) {
	var m *Metrics
	m.ObserveCall("CopyImage", CodeOK, time.Second)
	m.ObserveThrottle("CopyImage")
	m.ObserveCopy("a", "b", time.Second)
	m.SetQueue("r", 1, 1)
	m.SetSlotLimit("r", 1)
	m.ObserveReconcile("p", nil)
	m.ObserveTransition(job.StateQueued, job.StateFailed)
	m.WatchStarted()()
	m.ObserveReload("tls", nil)
	m.ObserveJobsRemoved(1)
	m.SetJobSource(nil)
	m.Preset(Known{Actions: []string{"a"}, Policies: []KnownPolicy{{Name: "p"}}, Regions: []string{"r"}})
	m.ForgetRegion("r")
	m.SetBuildInfo("v", "go", "r")
	m.SetSlotLimits(func(string) int { return 1 })
	m.SetReadiness(func() (bool, string) { return true, "" })
	m.InitGRPC(nil)
	if m.GRPCServerOptions() != nil {
		t.Error("GRPCServerOptions on nil Metrics returned options")
	}
	if err := m.Serve(t.Context(), "127.0.0.1:0"); err == nil {
		t.Error("Serve on nil Metrics succeeded")
	}
}
