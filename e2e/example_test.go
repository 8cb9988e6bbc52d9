package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The README's first command runs the daemon on policies.example.yaml with
// the simulated cloud. Here: that file (only sped up), `replctl plan` shows
// what the policies would do, and the emulator's counters prove the plan
// changed nothing in ECS.
func TestExampleFilePlan(t *testing.T) {
	raw, err := os.ReadFile("../policies.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := strings.Replace(string(raw), "time_scale: 10", "time_scale: 2000", 1)
	if cfg == string(raw) {
		t.Fatal("policies.example.yaml has no `time_scale: 10` to speed up")
	}
	config := filepath.Join(dir, "policies.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := start(t, "replicatord", nil, "--config", config)
	line := d.waitLine("ECS emulator at http://", 30*time.Second)
	emu := strings.Fields(line[strings.Index(line, "http://"):])[0]
	d.waitLine("replicatord ready", 30*time.Second)
	e := &env{t: t, dir: dir, socket: filepath.Join(dir, ".replicatord", "replicatord.sock"), endpoint: emu}

	// Let the policies converge, so nothing else calls ECS meanwhile.
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, code := e.ctl("jobs", "--all", "-o", "json")
		busy := 0
		for _, j := range jobsIn(t, out) {
			if !strings.HasSuffix(j.State, "SUCCEEDED") && !strings.HasSuffix(j.State, "FAILED") && !strings.HasSuffix(j.State, "CANCELLED") {
				busy++
			}
		}
		if code == 0 && busy == 0 && len(jobsIn(t, out)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("example policies did not converge: %d jobs busy", busy)
		}
		time.Sleep(250 * time.Millisecond) // poll the daemon, as an operator would
	}

	before := e.stats()
	out, code := e.ctl("plan")
	if code != 0 {
		t.Fatalf("replctl plan: exit %d: %s", code, out)
	}
	for _, want := range []string{"golden-to-east", "payments-api-releases", "EXISTS", "BLOCKED", "max_size_gib"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
	after := e.stats()
	for action, codes := range after {
		if action != "DescribeImages" && sum(codes) != sum(before[action]) {
			t.Errorf("plan called %s (%v -> %v)", action, before[action], codes)
		}
	}
	if sum(after["DescribeImages"]) <= sum(before["DescribeImages"]) {
		t.Errorf("plan did not read ECS at all")
	}

	// The README walk-through's first copy: the example policy already
	// copies this image there, so replctl answers with the policy's jobs
	// instead of making second copies (README: "A walk through replctl").
	out, code = e.ctl("copy", "m-bp1f5c9ka0z2wn3hj6ys", "--from", "cn-hangzhou", "--to", "cn-shanghai,cn-beijing", "-o", "json")
	if code != 0 {
		t.Fatalf("walk-through copy: exit %d: %s", code, out)
	}
	answers := copyAnswers(t, out)
	if len(answers) != 2 {
		t.Fatalf("walk-through copy answered %d jobs: %s", len(answers), out)
	}
	for id, a := range answers {
		if a.Outcome != "COPY_OUTCOME_EXISTING" || a.Policy != "golden-to-east" || a.Job.State != "JOB_STATE_SUCCEEDED" {
			t.Errorf("walk-through copy, job %s: outcome %s policy %q state %s; want the policy's SUCCEEDED job, EXISTING", id, a.Outcome, a.Policy, a.Job.State)
		}
	}
	if d.stop() != 0 {
		t.Errorf("daemon did not stop cleanly")
	}
}
