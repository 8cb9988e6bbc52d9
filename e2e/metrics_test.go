package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// series is one scrape of the text exposition: every sample line, parsed.
type series []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape fetches /metrics and parses the text format. Label values in
// replicatord's metrics never hold quotes, commas or escapes, which keeps
// the parser small.
func scrape(t *testing.T, addr string) (series, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d, %v", resp.StatusCode, err)
	}
	var s series
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			t.Fatalf("scrape: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad value in %q: %v", line, err)
		}
		smp := sample{name: line[:sp], labels: map[string]string{}, value: v}
		if i := strings.IndexByte(smp.name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(smp.name[i+1:], "}"), ",") {
				k, val, ok := strings.Cut(kv, "=")
				if ok {
					smp.labels[k] = strings.Trim(val, `"`)
				}
			}
			smp.name = smp.name[:i]
		}
		s = append(s, smp)
	}
	return s, string(body)
}

// sum adds up the samples of name whose labels include want ("k", "v"
// pairs); found is false when there is none.
func (s series) sum(name string, want ...string) (total float64, found bool) {
next:
	for _, smp := range s {
		if smp.name != name {
			continue
		}
		for i := 0; i+1 < len(want); i += 2 {
			if smp.labels[want[i]] != want[i+1] {
				continue next
			}
		}
		total += smp.value
		found = true
	}
	return total, found
}

// get is sum that fails the test when no sample matches.
func (s series) get(t *testing.T, name string, want ...string) float64 {
	t.Helper()
	v, ok := s.sum(name, want...)
	if !ok {
		t.Fatalf("no sample %s%v in the scrape", name, want)
	}
	return v
}

// codeSum adds up ECS calls whose code starts with prefix.
func (s series) codeSum(prefix string) float64 {
	var n float64
	for _, smp := range s {
		if smp.name == "replicatord_ecs_api_calls_total" && strings.HasPrefix(smp.labels["code"], prefix) {
			n += smp.value
		}
	}
	return n
}

// scrapeUntil scrapes until ok holds, or fails after timeout. The daemon is
// a real process driven by a real emulator: polling is the only way to see
// an effect that is due "at the next poll".
func scrapeUntil(t *testing.T, addr, what string, timeout time.Duration, ok func(series) bool) series {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, body := scrape(t, addr)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics did not show %s within %s; last scrape:\n%s", what, timeout, body)
		}
		time.Sleep(200 * time.Millisecond) // poll interval of a real process, not synchronisation
	}
}

// scrapeWithin is scrapeUntil that reports a timeout instead of failing.
func scrapeWithin(t *testing.T, addr string, timeout time.Duration, ok func(series) bool) (series, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, _ := scrape(t, addr)
		if ok(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(200 * time.Millisecond) // poll interval of a real process, not synchronisation
	}
}

// emuAdmin sends a JSON request to the emulator's admin API.
func (e *env) emuAdmin(method, path, body string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.endpoint+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("ecsemu admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		e.t.Fatalf("ecsemu admin %s %s: HTTP %d: %s", method, path, resp.StatusCode, out)
	}
}

// A copy moves the counters: ECS calls by action and code (errors and
// throttles included), job transitions, queue and slot gauges, jobs by
// state, and the copy duration histogram once it finishes.
func TestMetricsDuringCopy(t *testing.T) {
	e := newEnv(t)
	maddr := freePort(t)
	e.startDaemon("--metrics-listen", maddr)
	const dst = "ap-northeast-1"

	before, _ := scrape(t, maddr)
	if v := before.get(t, "replicatord_ecs_api_calls_total", "action", "DescribeRegions", "code", "OK"); v < 1 {
		t.Errorf("DescribeRegions calls at start = %v, want >= 1 (the daemon lists regions when it starts)", v)
	}
	if v, _ := before.sum("replicatord_copy_duration_seconds_count", "destination_region", dst); v != 0 {
		t.Errorf("copy duration count before any copy = %v, want 0", v)
	}

	// The 120 GiB image: about 25 s at the e2e time scale, long enough to
	// look at it while it copies.
	out, code := e.ctl("copy", imgWindows, "--from", source, "--to", dst, "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("copy exit %d:\n%s", code, out)
	}
	var id string
	for k := range jobsIn(t, out) {
		id = k
	}
	e.waitState(id, "JOB_STATE_COPYING", 60*time.Second)

	// The transition is counted just after the store has it (and the API
	// shows it): wait for the counter, not only the gauge.
	during := scrapeUntil(t, maddr, "the copy in flight", 30*time.Second, func(s series) bool {
		v, _ := s.sum("replicatord_copy_slots_in_use", "region", dst)
		c, _ := s.sum("replicatord_job_transitions_total", "to", "copying")
		return v == 1 && c >= 1
	})
	if v := during.get(t, "replicatord_ecs_api_calls_total", "action", "CopyImage", "code", "OK"); v != 1 {
		t.Errorf("CopyImage OK calls = %v, want 1", v)
	}
	if v := during.get(t, "replicatord_jobs", "state", "copying", "region", dst); v != 1 {
		t.Errorf("jobs copying in %s = %v, want 1", dst, v)
	}
	if v := during.get(t, "replicatord_job_transitions_total", "to", "copying"); v < 1 {
		t.Errorf("transitions to copying = %v, want >= 1", v)
	}
	if v := during.get(t, "replicatord_queue_depth", "region", dst); v != 0 {
		t.Errorf("queue depth of %s = %v, want 0 (one job, in flight)", dst, v)
	}
	if _, ok := during.sum("replicatord_ecs_api_call_duration_seconds_count", "action", "CopyImage"); !ok {
		t.Errorf("no CopyImage latency histogram")
	}
	polls := during.get(t, "replicatord_ecs_api_calls_total", "action", "DescribeImages", "code", "OK")

	// ECS failing: the failed polls are counted under their ECS code.
	e.emuAdmin(http.MethodPut, "/_ecsemu/faults", `{"action":"DescribeImages","fault":{"internalErrorRate":1}}`)
	scrapeUntil(t, maddr, "DescribeImages failing with InternalError", 30*time.Second, func(s series) bool {
		v, _ := s.sum("replicatord_ecs_api_calls_total", "action", "DescribeImages", "code", "InternalError")
		return v >= 1
	})
	e.emuAdmin(http.MethodDelete, "/_ecsemu/faults", "")

	// ECS flow control: throttled calls are counted by code, and as
	// throttles by action.
	e.emuAdmin(http.MethodPut, "/_ecsemu/config", `{"throttleRate": 1}`)
	throttled := scrapeUntil(t, maddr, "throttled calls", 45*time.Second, func(s series) bool {
		v, _ := s.sum("replicatord_ecs_throttles_total")
		return v >= 1 && s.codeSum("Throttling") >= 1
	})
	if v, _ := throttled.sum("replicatord_ecs_throttles_total", "action", "DescribeImages"); v < 1 {
		t.Errorf("DescribeImages throttles = %v, want >= 1", v)
	}
	e.emuAdmin(http.MethodPut, "/_ecsemu/config", fmt.Sprintf(`{"throttleRate": %d}`, 1000))

	e.waitState(id, "JOB_STATE_SUCCEEDED", 120*time.Second)
	after := scrapeUntil(t, maddr, "the transition to succeeded", 30*time.Second, func(s series) bool {
		v, _ := s.sum("replicatord_job_transitions_total", "to", "succeeded")
		return v >= 1
	})
	// The histogram is observed right after the transition is stored.
	if s, ok := scrapeWithin(t, maddr, 10*time.Second, func(s series) bool {
		_, ok := s.sum("replicatord_copy_duration_seconds_count", "destination_region", dst)
		return ok
	}); ok {
		after = s
		if v := after.get(t, "replicatord_copy_duration_seconds_count", "source_region", source, "destination_region", dst); v != 1 {
			t.Errorf("copy duration count on %s>%s = %v, want 1", source, dst, v)
		}
		if v := after.get(t, "replicatord_copy_duration_seconds_sum", "destination_region", dst); v <= 0 {
			t.Errorf("copy duration sum = %v, want > 0", v)
		}
	} else {
		t.Errorf("no replicatord_copy_duration_seconds sample for %s>%s after the copy succeeded", source, dst)
	}
	if v := after.get(t, "replicatord_ecs_api_calls_total", "action", "DescribeImages", "code", "OK"); v <= polls {
		t.Errorf("DescribeImages OK calls did not grow: %v during the copy, %v after", polls, v)
	}
	if v := after.get(t, "replicatord_job_transitions_total", "to", "succeeded"); v != 1 {
		t.Errorf("transitions to succeeded = %v, want 1", v)
	}
	if v, _ := after.sum("replicatord_copy_slots_in_use", "region", dst); v != 0 {
		t.Errorf("slots in use in %s after the copy = %v, want 0", dst, v)
	}
	if v, _ := after.sum("replicatord_jobs", "state", "copying"); v != 0 {
		t.Errorf("jobs copying after the copy = %v, want 0", v)
	}
	if v := after.get(t, "replicatord_oldest_queued_job_age_seconds"); v != 0 {
		t.Errorf("oldest queued job age with nothing queued = %v, want 0", v)
	}
}

// opsTool finds helm or promtool for the tests that run them: $HELM or
// $PROMTOOL, else tools/bin (make ops-tools installs both there). Without
// it the test is skipped, except in CI (CI=true), where it must run.
func opsTool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "tools", "bin", name))
	if err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found ($%s unset, no tools/bin/%s): run make ops-tools", name, env, name)
	}
	t.Skipf("%s not found ($%s unset, no tools/bin/%s): make ops-tools installs it", name, env, name)
	return ""
}

// dashboard is the part of the Grafana dashboard JSON the tests read.
type dashboard struct {
	UID        string           `json:"uid"`
	Title      string           `json:"title"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// alertRules is deploy/prometheus/alerts.yaml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// loadDashboard reads and checks the dashboard's structure: valid JSON,
// unique panel ids, every panel on the 24-column grid with a query, and
// every variable a query uses defined.
func loadDashboard(t *testing.T) (dashboard, []string) {
	t.Helper()
	b, err := os.ReadFile("../deploy/grafana/replicatord.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("deploy/grafana/replicatord.json is not valid JSON: %v", err)
	}
	if !json.Valid(b) {
		t.Fatalf("deploy/grafana/replicatord.json: trailing data after the dashboard")
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without uid, title or panels: %q %q %d", d.UID, d.Title, len(d.Panels))
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	varRE := regexp.MustCompile(`\$\{?([A-Za-z_]+)`)
	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q is off the 24-column grid: %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q query %s is empty", p.Title, tg.RefID)
			}
			for _, m := range varRE.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("panel %q uses $%s, which the dashboard does not define", p.Title, m[1])
				}
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	return d, exprs
}

func loadAlertRules(t *testing.T) (alertRules, []string) {
	t.Helper()
	b, err := os.ReadFile("../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var r alertRules
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yaml: %v", err)
	}
	var exprs []string
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" || strings.TrimSpace(rule.Expr) == "" {
				t.Errorf("group %s: a rule without alert name or expr: %+v", g.Name, rule)
			}
			if rule.Labels["severity"] == "" || rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" {
				t.Errorf("alert %s lacks a severity, summary or description", rule.Alert)
			}
			exprs = append(exprs, rule.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatal("no alert rules")
	}
	return r, exprs
}

// metricNames returns the metric names a PromQL expression reads. All of
// replicatord's start with replicatord_ (and the gRPC ones with
// grpc_server_); label values in quotes are dropped first so that they
// cannot look like names. up is Prometheus's own.
func metricNames(expr string) []string {
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	re := regexp.MustCompile(`\b(replicatord_[a-z0-9_]+|grpc_server_[a-z0-9_]+|up)\b`)
	return re.FindAllString(expr, -1)
}

// Every metric the dashboard and the alert rules query exists on a real
// daemon: all but replicatord_jobs (a series per state that holds jobs)
// right after its start, before any copy or failure, since the counters are
// preset at zero for every known label set, so that the first failure is
// an increase.
func TestDashboardAndAlertsQueryExistingMetrics(t *testing.T) {
	_, dashExprs := loadDashboard(t)
	_, ruleExprs := loadAlertRules(t)

	e := newEnv(t)
	e.writeConfig(goldenPolicies)
	maddr := freePort(t)
	e.startDaemon("--metrics-listen", maddr)

	// /readyz turns 200 once the gRPC server serves; /healthz is 200.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + maddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && string(body) == "ready\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %q after the daemon said ready", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond) // poll a real process
	}
	resp, err := http.Get("http://" + maddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %s", resp.Status)
	}

	s, body := scrape(t, maddr)
	have := map[string]bool{"up": true}
	for _, smp := range s {
		have[smp.name] = true
	}
	// replicatord_jobs is asked of the scheduler at each scrape and has a
	// series only for states that hold jobs: the policies make some soon.
	later := scrapeUntil(t, maddr, "live jobs", 60*time.Second, func(s series) bool {
		_, ok := s.sum("replicatord_jobs")
		return ok
	})
	for _, smp := range later {
		have[smp.name] = true
	}
	check := func(kind string, exprs []string) {
		for _, ex := range exprs {
			names := metricNames(ex)
			if len(names) == 0 {
				t.Errorf("%s query reads no replicatord metric: %s", kind, ex)
			}
			for _, n := range names {
				if !have[n] {
					t.Errorf("%s queries %s, which the daemon does not expose (query: %s)", kind, n, ex)
				}
			}
		}
	}
	check("dashboard", dashExprs)
	check("alert", ruleExprs)

	// The zero series the alerts rely on, for every known label set.
	if v := s.get(t, "replicatord_build_info", "go_version", runtime.Version()); v != 1 {
		t.Errorf("build_info = %v, want 1", v)
	}
	for _, a := range []string{"CopyImage", "DescribeImages", "DeleteImage", "CancelCopyImage", "TagResources", "ModifyImageAttribute", "ModifyImageSharePermission", "DescribeRegions"} {
		if _, ok := s.sum("replicatord_ecs_throttles_total", "action", a); !ok {
			t.Errorf("no replicatord_ecs_throttles_total{action=%q} at start", a)
		}
	}
	for _, p := range []string{"golden", "warehouse"} {
		for _, n := range []string{"replicatord_reconcile_errors_total", "replicatord_reconcile_runs_total", "replicatord_reconcile_last_run_timestamp_seconds", "replicatord_policy_interval_seconds"} {
			if _, ok := s.sum(n, "policy", p); !ok {
				t.Errorf("no %s{policy=%q} at start", n, p)
			}
		}
	}
	if v, ok := s.sum("replicatord_job_transitions_total", "to", "failed"); !ok || v != 0 {
		t.Errorf("transitions to failed at start = %v (found %v), want 0 series present", v, ok)
	}
	for _, r := range []string{"cn-shanghai", "cn-beijing", "ap-southeast-1"} {
		if v := s.get(t, "replicatord_copy_slots_limit", "region", r); v != 5 {
			t.Errorf("copy_slots_limit{region=%s} = %v, want 5 (the default)", r, v)
		}
		if _, ok := s.sum("replicatord_copy_overdue_seconds", "region", r); !ok {
			t.Errorf("no copy_overdue_seconds{region=%s}", r)
		}
	}
	if _, ok := s.sum("grpc_server_handled_total", "grpc_service", "replicator.v1.ReplicatorService", "grpc_method", "Copy"); !ok {
		t.Errorf("no grpc_server_handled_total for replicator.v1.ReplicatorService/Copy at start")
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}

// The dashboard's queries are valid PromQL: promtool checks them as
// recording rules (Grafana's variables replaced by values).
func TestDashboardQueriesParse(t *testing.T) {
	promtool := opsTool(t, "PROMTOOL", "promtool")
	_, exprs := loadDashboard(t)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	repl := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "${datasource}", "x", "$job", ".+", "$instance", ".+")
	for i, ex := range exprs {
		q, _ := json.Marshal(repl.Replace(ex))
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
