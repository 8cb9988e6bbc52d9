package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// copyAnswer is one line of `replctl copy -o json`.
type copyAnswer struct {
	Job      *jsonJob `json:"job"`
	Outcome  string   `json:"outcome"`
	Replayed bool     `json:"replayed"`
	Policy   string   `json:"-"`
}

// copyAnswers parses `replctl copy -o json` into the last answer per job.
func copyAnswers(t *testing.T, out string) map[string]copyAnswer {
	t.Helper()
	got := map[string]copyAnswer{}
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "{") {
			continue
		}
		var a copyAnswer
		var raw struct {
			Job struct {
				Policy string `json:"policy"`
			} `json:"job"`
		}
		if err := json.Unmarshal([]byte(l), &a); err != nil || a.Job == nil {
			t.Fatalf("bad copy line %q: %v", l, err)
		}
		_ = json.Unmarshal([]byte(l), &raw)
		a.Policy = raw.Job.Policy
		got[a.Job.ID] = a
	}
	return got
}

func keys[V any](m map[string]V) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, " ")
}

// The same request id twice makes one copy (the emulator's view through
// the SDK); the same id with other flags is refused naming the first
// request; without an id a repeated copy returns the existing job, and
// --force makes a second copy.
func TestCopyRequestIDMakesOneCopy(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	args := []string{"copy", imgAlinux, "--from", source, "--to", "cn-beijing", "-o", "json", "--request-id", "e2e-build-17"}
	out1, code := e.ctl(args...)
	if code != 0 {
		t.Fatalf("first copy: exit %d: %s", code, out1)
	}
	out2, code := e.ctl(args...)
	if code != 0 {
		t.Fatalf("retried copy: exit %d: %s", code, out2)
	}
	first, second := copyAnswers(t, out1), copyAnswers(t, out2)
	if len(first) != 1 || keys(first) != keys(second) {
		t.Fatalf("the retry answered jobs %s, the first call %s", keys(second), keys(first))
	}
	for id, a := range second {
		if !a.Replayed || a.Outcome != "COPY_OUTCOME_CREATED" || a.Job.State != "JOB_STATE_SUCCEEDED" {
			t.Errorf("retry, job %s: replayed %v outcome %s state %s", id, a.Replayed, a.Outcome, a.Job.State)
		}
	}
	if n := len(e.copiesIn("cn-beijing", imgAlinux)); n != 1 {
		t.Fatalf("ECS has %d copies of %s in cn-beijing after the same request twice, want 1", n, imgAlinux)
	}

	// Same id, other destination: ALREADY_EXISTS (exit 16) naming the first.
	out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-shanghai", "--request-id", "e2e-build-17")
	if code != 16 || !strings.Contains(out, "e2e-build-17") || !strings.Contains(out, keys(first)) || !strings.Contains(out, "cn-beijing") {
		t.Errorf("same id, other parameters: exit %d: %s", code, out)
	}

	// No id (replctl picks a fresh one): the existing job answers.
	out3, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-beijing", "-o", "json")
	if code != 0 {
		t.Fatalf("repeated copy: exit %d: %s", code, out3)
	}
	third := copyAnswers(t, out3)
	if keys(third) != keys(first) || third[keys(first)].Outcome != "COPY_OUTCOME_EXISTING" || third[keys(first)].Replayed {
		t.Errorf("a repeated copy answered %v, want job %s EXISTING", third, keys(first))
	}
	// The table output says so too.
	if out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-beijing"); code != 0 || !strings.Contains(out, "existing job answers cn-beijing "+keys(first)) {
		t.Errorf("plain output does not say the existing job answered: exit %d: %s", code, out)
	}
	if n := len(e.copiesIn("cn-beijing", imgAlinux)); n != 1 {
		t.Fatalf("ECS has %d copies after repeated copies without --force, want 1", n)
	}

	// --force: a second copy.
	out4, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-beijing", "-o", "json", "--force")
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, out4)
	}
	forced := copyAnswers(t, out4)
	if len(forced) != 1 || keys(forced) == keys(first) || forced[keys(forced)].Outcome != "COPY_OUTCOME_CREATED" {
		t.Errorf("--force answered %v, want a new CREATED job", forced)
	}
	if n := len(e.copiesIn("cn-beijing", imgAlinux)); n != 2 {
		t.Fatalf("ECS has %d copies after --force, want 2", n)
	}
}

// An ad-hoc copy of what a policy already copied returns the policy's job.
func TestCopyOfPolicyCopyReturnsExistingJob(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(`policies:
  - name: alinux
    source:
      region: cn-hangzhou
      images: {name: "golden-alinux3-*"}
    destinations: [cn-beijing]
    copy:
      name: "{{.SourceName}}-{{.DestinationRegion}}"
    interval: 1h
`)
	e.startDaemon()
	var policyJob string
	deadline := time.Now().Add(60 * time.Second)
	for policyJob == "" {
		out, code := e.ctl("jobs", "--all", "--policy", "alinux", "-o", "json")
		for id, j := range jobsIn(t, out) {
			if code == 0 && j.State == "JOB_STATE_SUCCEEDED" {
				policyJob = id
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy made no copy: %s", out)
		}
		time.Sleep(200 * time.Millisecond) // poll the daemon, as an operator would
	}
	out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-beijing", "-o", "json")
	if code != 0 {
		t.Fatalf("copy: exit %d: %s", code, out)
	}
	got := copyAnswers(t, out)
	if a, ok := got[policyJob]; len(got) != 1 || !ok || a.Outcome != "COPY_OUTCOME_EXISTING" || a.Policy != "alinux" {
		t.Fatalf("copy of the policy's image answered %v, want the policy's job %s EXISTING", got, policyJob)
	}
	if n := len(e.copiesIn("cn-beijing", imgAlinux)); n != 1 {
		t.Fatalf("ECS has %d copies in cn-beijing, want the policy's one", n)
	}
}

// One undecodable job record in a real state file: the daemon starts,
// names the record in its log and in replicatord_state_corrupt_records,
// `replctl jobs` and `replctl watch` show the other jobs, and
// --check-state names it.
func TestStateFileCorruptRecord(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-beijing,cn-shanghai", "-o", "json")
	if code != 0 {
		t.Fatalf("copy: exit %d: %s", code, out)
	}
	ids := strings.Fields(keys(copyAnswers(t, out)))
	if len(ids) != 2 {
		t.Fatalf("copy answered %v", ids)
	}
	bad, good := ids[0], ids[1]
	if code := e.daemon.stop(); code != 0 {
		t.Fatalf("daemon stop: exit %d", code)
	}
	path := filepath.Join(e.dir, "data", "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("jobs")).Put([]byte(bad), []byte("\x01{\"id\": garbage"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	maddr := freePort(t)
	e.startDaemon("--metrics-listen", maddr)
	e.daemon.waitLine("jobs/"+bad, 30*time.Second)
	out, code = e.ctl("jobs", "--all", "-o", "json")
	if code != 0 {
		t.Fatalf("replctl jobs with one corrupt record: exit %d: %s", code, out)
	}
	if js := jobsIn(t, out); len(js) != 1 || js[good].ID != good {
		t.Errorf("replctl jobs = %v, want only %s", js, good)
	}
	w := e.ctlStart("watch", "-o", "json")
	w.waitLine(good, 30*time.Second)
	w.cmd.Process.Kill()
	scrapeUntil(t, maddr, "replicatord_state_corrupt_records 1", 30*time.Second, func(s series) bool {
		v, _ := s.sum("replicatord_state_corrupt_records")
		return v == 1
	})
	// New copies still work beside it.
	if out, code := e.ctl("copy", imgUbuntu, "--from", source, "--to", "cn-beijing", "--detach"); code != 0 {
		t.Errorf("copy beside a corrupt record: exit %d: %s", code, out)
	}
	e.daemon.stop()
	cout, err := exec.Command(filepath.Join(binDir, "replicatord"), "--check-state", path).CombinedOutput()
	if err == nil || !strings.Contains(string(cout), "jobs/"+bad) {
		t.Errorf("--check-state = %v: %s; want it to name jobs/%s", err, cout, bad)
	}
	assertNoPanic(t, e.daemon.output())
}
