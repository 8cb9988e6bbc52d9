package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// policyLine is the part of `replctl policies -o json` (one Policy per
// line) this test reads.
type policyLine struct {
	Name              string `json:"name"`
	LastError         string `json:"lastError"`
	LastReconcileTime string `json:"lastReconcileTime"`
	Destinations      []struct {
		Region        string `json:"region"`
		LastError     string `json:"lastError"`
		Failures      int    `json:"failures"`
		NextRetryTime string `json:"nextRetryTime"`
	} `json:"destinations"`
}

func (e *env) policyStatus(name string) policyLine {
	e.t.Helper()
	out, code := e.ctl("policies", "-o", "json")
	if code != 0 {
		e.t.Fatalf("replctl policies: exit %d: %s", code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		var p policyLine
		if strings.HasPrefix(strings.TrimSpace(l), "{") && json.Unmarshal([]byte(l), &p) == nil && p.Name == name {
			return p
		}
	}
	e.t.Fatalf("policy %s not in %s", name, out)
	return policyLine{}
}

// jobRegions counts a policy's jobs by destination region.
func (e *env) jobRegions(policy string) map[string]int {
	e.t.Helper()
	out, _ := e.ctl("jobs", "--policy", policy, "--all", "-o", "json")
	n := map[string]int{}
	for _, j := range jobsIn(e.t, out) {
		n[j.DestinationRegion]++
	}
	return n
}

// A destination whose DescribeImages fails (503) does not hold back the
// others: their copies start in the first run, and the failed region is
// retried on its own and catches up once the fault clears, with no run of
// the whole policy (its interval is an hour).
func TestOneDestinationFailingDoesNotHoldBackTheOthers(t *testing.T) {
	e := newEnv(t, "--time-scale", "400")
	e.writeConfig(`policies:
  - name: golden
    source:
      region: cn-hangzhou
      images: {tags: {role: golden}}
    destinations: [cn-shanghai, cn-beijing, ap-southeast-1]
    copy: {name: "{{.SourceName}}-{{.DestinationRegion}}"}
    retention: {keep_last: 1, per_family: true}
    interval: 1h
`)
	e.emuAdmin(http.MethodPut, "/_ecsemu/faults", `{"action":"DescribeImages@cn-beijing","fault":{"unavailableRate":1}}`)
	e.startDaemon()

	// The first run queues the copies to the two healthy regions and
	// reports cn-beijing as retried alone.
	deadline := time.Now().Add(60 * time.Second)
	var st policyLine
	for {
		st = e.policyStatus("golden")
		if len(st.Destinations) == 3 && st.Destinations[1].Failures >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cn-beijing never reported failing: %+v", st)
		}
		time.Sleep(200 * time.Millisecond) // poll the daemon, as an operator would
	}
	bj := st.Destinations[1]
	if st.LastError != "" || bj.Region != "cn-beijing" || !strings.Contains(bj.LastError, "ServiceUnavailable") || bj.NextRetryTime == "" {
		t.Errorf("status while cn-beijing fails: %+v", st)
	}
	for _, d := range []int{0, 2} {
		if d := st.Destinations[d]; d.Failures != 0 || d.LastError != "" {
			t.Errorf("healthy destination %+v", d)
		}
	}
	n := e.jobRegions("golden")
	if n["cn-shanghai"] != len(goldenNewest) || n["ap-southeast-1"] != len(goldenNewest) || n["cn-beijing"] != 0 {
		t.Fatalf("jobs by region while cn-beijing fails: %v", n)
	}
	if out, _ := e.ctl("policies"); !strings.Contains(out, "cn-beijing: list copies in cn-beijing") {
		t.Errorf("replctl policies does not show the failing destination:\n%s", out)
	}
	firstRun := st.LastReconcileTime

	// The fault clears: the retry of cn-beijing alone catches it up.
	e.emuAdmin(http.MethodDelete, "/_ecsemu/faults", "")
	e.waitJobs("golden", len(goldenNewest)*3)
	if n := e.jobRegions("golden"); n["cn-beijing"] != len(goldenNewest) {
		t.Errorf("jobs by region after the fault: %v", n)
	}
	st = e.policyStatus("golden")
	if bj := st.Destinations[1]; bj.Failures != 0 || bj.LastError != "" || bj.NextRetryTime != "" {
		t.Errorf("cn-beijing after catching up: %+v", bj)
	}
	if st.LastReconcileTime != firstRun {
		t.Errorf("the whole policy ran again (%s, first %s): the retry was not alone", st.LastReconcileTime, firstRun)
	}
}
