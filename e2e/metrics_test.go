package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
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

	during := scrapeUntil(t, maddr, "the copy in flight", 30*time.Second, func(s series) bool {
		v, _ := s.sum("replicatord_copy_slots_in_use", "region", dst)
		return v == 1
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
