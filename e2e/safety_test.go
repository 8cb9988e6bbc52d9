package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/job"
)

// The "touch only what it made" tests (issue 10): hand-made images with
// replicatord's tags, two installations on one account, cancels that ECS
// refuses, a cancel racing a policy run, and pruned jobs.

const edgePolicy = `policies:
  - name: edge
    source:
      region: cn-hangzhou
      images: {tags: {os: alinux}}
    destinations: [cn-shanghai]
    copy: {name: "{{.SourceName}}-edge"}
    retention: {keep_last: 1}
    interval: 10m
`

// plant adds an image to the emulator through its admin API, as a person
// in the console would make one.
func (e *env) plant(region, id, name, status string, tags map[string]string, created time.Time) {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"region": region, "id": id, "name": name, "sizeGiB": 20, "status": status,
		"tags": tags, "creationTime": created.UTC().Format(time.RFC3339)})
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.Post(e.endpoint+"/_ecsemu/images", "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		e.t.Fatalf("plant %s: %d %s", id, resp.StatusCode, b.String())
	}
}

// exists reports whether the emulator holds image id in region.
func (e *env) exists(region, id string) bool {
	e.t.Helper()
	for _, im := range e.adminImages(region) {
		if im.ImageID == id {
			return true
		}
	}
	return false
}

// allJobs returns every job the daemon knows, by id.
func (e *env) allJobs() map[string]jsonJob {
	e.t.Helper()
	out, code := e.ctl("jobs", "--all", "-o", "json")
	if code != 0 {
		e.t.Fatalf("replctl jobs: exit %d: %s", code, out)
	}
	return jobsIn(e.t, out)
}

// waitUntil polls cond (the daemon or the emulator) until it holds.
func (e *env) waitUntil(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not reached within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond) // poll, as an operator would
	}
}

// reconcileAndWait triggers a policy and waits until a run has finished
// after the trigger (its last_reconcile_time moves).
func (e *env) reconcileAndWait(policy string) {
	e.t.Helper()
	last := func() string {
		out, _ := e.ctl("policies", "-o", "json")
		for _, l := range strings.Split(out, "\n") {
			var p struct {
				Name string `json:"name"`
				Last string `json:"lastReconcileTime"`
			}
			if json.Unmarshal([]byte(l), &p) == nil && p.Name == policy {
				return p.Last
			}
		}
		return ""
	}
	before := last()
	if out, code := e.ctl("reconcile", policy); code != 0 {
		e.t.Fatalf("reconcile %s: exit %d: %s", policy, code, out)
	}
	e.waitUntil("a run of "+policy, 60*time.Second, func() bool { l := last(); return l != "" && l != before })
}

// planItem is the part of a PlanItem the tests read.
type planItem struct {
	Action             string `json:"action"`
	Reason             string `json:"reason"`
	SourceImageID      string `json:"sourceImageId"`
	DestinationImageID string `json:"destinationImageId"`
}

func (p planItem) String() string {
	return p.Action + " " + p.DestinationImageID + " (" + p.Reason + ")"
}

// parsePlan reads `replctl plan -o json` (the whole response on one line).
func parsePlan(t testing.TB, out string) []planItem {
	t.Helper()
	var resp struct {
		Items []planItem `json:"items"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &resp); err != nil {
		t.Fatalf("plan output %q: %v", out, err)
	}
	return resp.Items
}

func (e *env) plan() []planItem {
	e.t.Helper()
	out, code := e.ctl("plan", "-o", "json")
	if code != 0 {
		e.t.Fatalf("plan: exit %d: %s", code, out)
	}
	return parsePlan(e.t, out)
}

// planFor returns the plan item about image id (zero if none).
func planFor(items []planItem, id string) planItem {
	for _, it := range items {
		if it.DestinationImageID == id {
			return it
		}
	}
	return planItem{}
}

func lineageOf(t *testing.T, e *env, region, id string) map[string]string {
	t.Helper()
	imgs, err := e.cloud.DescribeImages(context.Background(), cloud.ImageQuery{Region: region, IDs: []string{id}, Statuses: cloud.AllStatuses})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("describe %s: %v %v", id, imgs, err)
	}
	return imgs[0].Tags
}

// TestHandMadeCopiesSurvive: images made by hand with partial lineage tags,
// with a job id the store does not know, and with the daemon's complete
// tag set copied from a real copy survive retention, a cancel and the
// adoption of a new state file; the plan shows them FOREIGN; the copy
// retention does delete is the daemon's own, and its job ends PRUNED.
func TestHandMadeCopiesSurvive(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(edgePolicy)
	old := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	const region = "cn-shanghai"
	partial := map[string]string{job.TagPolicy: "edge", job.TagSourceImage: "m-bp1oldalinux00000000", job.TagSourceRegion: source}
	withJob := map[string]string{job.TagJobID: job.NewID(old)}
	owned := map[string]string{job.TagJobID: job.NewID(old), job.TagOwner: job.DefaultOwner, job.TagAttempt: "1"}
	for k, v := range partial {
		withJob[k], owned[k] = v, v
	}
	const (
		idPartial = "m-uf6partial0000000000"
		idJob     = "m-uf6jobid000000000000"
		idOwned   = "m-uf6owned000000000000"
	)
	e.plant(region, idPartial, "handmade-partial", "Available", partial, old)
	e.plant(region, idJob, "handmade-jobid", "UnAvailable", withJob, old)
	// This owner's tag and a job id, by hand: the new state file of the
	// first start adopts it (tags are all it has), as adopted.
	e.plant(region, idOwned, "handmade-owned", "Available", owned, old)

	e.startDaemon()
	var first jsonJob
	e.waitUntil("the alinux copy", 90*time.Second, func() bool {
		for _, j := range e.allJobs() {
			if j.SourceImageID == imgAlinux && j.State == "JOB_STATE_SUCCEEDED" {
				first = j
				return true
			}
		}
		return false
	})
	// The daemon's complete tag set, copied onto a hand-made image.
	const idForged = "m-uf6forged00000000000"
	e.plant(region, idForged, "handmade-forged", "Available", lineageOf(t, e, region, first.DestinationImageID), old)

	// A cancel: a big copy with a hand-made twin carrying its tags.
	out, code := e.ctl("copy", imgWindows, "--from", source, "--to", region, "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("copy: exit %d: %s", code, out)
	}
	var big string
	for id := range jobsIn(t, out) {
		big = id
	}
	e.waitState(big, "JOB_STATE_COPYING", 60*time.Second)
	bigCopy := e.allJobs()[big].DestinationImageID
	const idTwin = "m-uf6twin0000000000000"
	e.plant(region, idTwin, "handmade-twin", "Available", lineageOf(t, e, region, bigCopy), old)
	if out, code := e.ctl("cancel", big); code != 0 {
		t.Fatalf("cancel: exit %d: %s", code, out)
	}
	e.waitState(big, "JOB_STATE_CANCELLED", 60*time.Second)
	if e.exists(region, bigCopy) || !e.exists(region, idTwin) {
		t.Fatalf("after the cancel: the copy is there %v, the hand-made twin is gone %v", e.exists(region, bigCopy), !e.exists(region, idTwin))
	}

	// Retention: a newer alinux build arrives; the daemon copies it and
	// prunes its own old copy, nothing else.
	e.plant(source, "m-bp1newalinux00000000", "golden-alinux3-20261201", "Available",
		map[string]string{"os": "alinux", "role": "golden"}, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	e.reconcileAndWait("edge")
	e.waitUntil("the new build copied", 90*time.Second, func() bool {
		for _, j := range e.allJobs() {
			if j.SourceImageID == "m-bp1newalinux00000000" && j.State == "JOB_STATE_SUCCEEDED" {
				return true
			}
		}
		return false
	})
	e.reconcileAndWait("edge")
	e.waitUntil("the old copy pruned and its job PRUNED", 60*time.Second, func() bool {
		return !e.exists(region, first.DestinationImageID) && e.allJobs()[first.ID].State == "JOB_STATE_PRUNED"
	})
	if j := e.allJobs()[first.ID]; !strings.Contains(j.PruneReason, "retention") {
		t.Errorf("pruned job's reason %q does not say retention", j.PruneReason)
	}
	plan := e.plan()
	for _, id := range []string{idPartial, idJob, idOwned, idForged} {
		if !e.exists(region, id) {
			t.Errorf("hand-made image %s was deleted", id)
		}
		if id == idOwned {
			// Adopted: beyond keep_last, kept because prune_adopted is off.
			if it := planFor(plan, id); it.Action != "PLAN_ACTION_EXISTS" || !strings.Contains(it.Reason, "prune_adopted") {
				t.Errorf("plan of the adopted hand-made image: %v", it)
			}
			continue
		}
		if it := planFor(plan, id); it.Action != "PLAN_ACTION_FOREIGN" || it.Reason == "" {
			t.Errorf("plan does not show %s as FOREIGN with a reason: %v", id, it)
		}
	}
	if it := planFor(plan, idForged); !strings.Contains(it.Reason, first.ID) {
		t.Errorf("the forged image's reason does not name the job whose tags it copies: %v", it)
	}

	// A lost state file: a new one adopts what carries this owner's tags,
	// as adopted, and deletes none of it (prune_adopted is off), although
	// retention would prune the old ones.
	if code := e.daemon.stop(); code != 0 {
		t.Fatalf("daemon stop: exit %d", code)
	}
	if err := os.Remove(filepath.Join(e.dir, "data", "state.db")); err != nil {
		t.Fatal(err)
	}
	e.startDaemon()
	e.reconcileAndWait("edge")
	e.reconcileAndWait("edge")
	adopted := map[string]bool{}
	for _, j := range e.allJobs() {
		if j.Adopted {
			adopted[j.DestinationImageID] = true
		}
	}
	for _, id := range []string{idOwned, idForged, idTwin} {
		if !adopted[id] {
			t.Errorf("%s (this owner's tags) was not adopted as adopted: %v", id, adopted)
		}
	}
	for _, id := range []string{idPartial, idJob} {
		if adopted[id] {
			t.Errorf("%s (no owner tag) was adopted", id)
		}
	}
	for _, id := range []string{idPartial, idJob, idOwned, idForged, idTwin} {
		if !e.exists(region, id) {
			t.Errorf("after adoption: hand-made image %s was deleted", id)
		}
	}
}

// TestTwoOwnersOneAccount: two installations with different owners on one
// emulator copy the same policy; each adopts, prunes and plans only its
// own copies and shows the other's as FOREIGN.
func TestTwoOwnersOneAccount(t *testing.T) {
	e := newEnv(t)
	cfg := func(name string) string {
		dir := filepath.Join(e.dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "replicatord.yaml")
		body := fmt.Sprintf("version: 1\ndaemon:\n  data_dir: data\n  owner: %s\ncloud:\n  provider: aliyun\n  endpoint: %s\nscheduler:\n  poll_min: 200ms\n  poll_max: 5s\n%s", name, e.endpoint,
			// ECS image names are unique per region: each names its copies.
			strings.Replace(edgePolicy, "-edge", "-"+name, 1))
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ctlIn := func(name string, args ...string) string {
		out, code := e.ctlAt("unix://"+filepath.Join(e.dir, name, "data", "replicatord.sock"), nil, args...)
		if code != 0 {
			t.Fatalf("replctl %v at %s: exit %d: %s", args, name, code, out)
		}
		return out
	}
	startAt := func(name string) *proc {
		p := start(t, "replicatord", credsEnv(), "--config", cfg(name))
		p.waitLine("replicatord ready", 30*time.Second)
		return p
	}
	copyOf := func(name string) (id string) {
		e.waitUntil(name+"'s copy", 90*time.Second, func() bool {
			for _, j := range jobsIn(t, ctlIn(name, "jobs", "--all", "-o", "json")) {
				if j.State == "JOB_STATE_SUCCEEDED" && j.SourceImageID == imgAlinux {
					id = j.DestinationImageID
					return true
				}
			}
			return false
		})
		return id
	}
	a := startAt("team-a")
	copyA := copyOf("team-a")
	// B starts on a new state file: it adopts nothing of A's.
	b := startAt("team-b")
	copyB := copyOf("team-b")
	if copyA == copyB {
		t.Fatalf("both installations claim copy %s", copyA)
	}
	if tags := lineageOf(t, e, "cn-shanghai", copyB); tags[job.TagOwner] != "team-b" {
		t.Errorf("team-b's copy carries owner %q", tags[job.TagOwner])
	}
	for _, j := range jobsIn(t, ctlIn("team-b", "jobs", "--all", "-o", "json")) {
		if j.DestinationImageID == copyA {
			t.Fatalf("team-b adopted team-a's copy %s", copyA)
		}
	}
	if it := planFor(parsePlan(t, ctlIn("team-b", "plan", "-o", "json")), copyA); it.Action != "PLAN_ACTION_FOREIGN" || !strings.Contains(it.Reason, "team-a") {
		t.Errorf("team-b's plan of team-a's copy: %v", it)
	}

	// A newer build: only B runs; it prunes its own old copy, not A's.
	a.stop()
	e.plant(source, "m-bp1newalinux00000000", "golden-alinux3-20261201", "Available",
		map[string]string{"os": "alinux"}, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	ctlIn("team-b", "reconcile", "edge")
	e.waitUntil("team-b prunes its old copy", 120*time.Second, func() bool {
		ctlIn("team-b", "reconcile", "edge")
		return !e.exists("cn-shanghai", copyB)
	})
	if !e.exists("cn-shanghai", copyA) {
		t.Fatalf("team-b's retention deleted team-a's copy %s", copyA)
	}
	b.stop()
	// A comes back and prunes its own.
	startAt("team-a")
	e.waitUntil("team-a prunes its old copy", 120*time.Second, func() bool {
		ctlIn("team-a", "reconcile", "edge")
		return !e.exists("cn-shanghai", copyA)
	})
}

// TestCancelNotSupportedEndsClean: ECS refuses every CancelCopyImage with
// CancelNotSupported and the copy outlasts the job's retry budget
// (scheduler.max_retries: 2). The cancel is carried through: the copy is
// followed, deleted once Available, and the job ends CANCELLED with
// nothing left in ECS (it used to end FAILED with the copy still Creating,
// and replctl retry then made a second copy).
func TestCancelNotSupportedEndsClean(t *testing.T) {
	e := newEnv(t, "--cancel-not-supported-rate", "1", "--time-scale", "40")
	e.writeConfig("  max_retries: 2\n")
	e.startDaemon()
	out, code := e.ctl("copy", imgWindows, "--from", source, "--to", "cn-shanghai", "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("copy: exit %d: %s", code, out)
	}
	var id string
	for k := range jobsIn(t, out) {
		id = k
	}
	e.waitState(id, "JOB_STATE_COPYING", 60*time.Second)
	if out, code := e.ctl("cancel", id); code != 0 {
		t.Fatalf("cancel: exit %d: %s", code, out)
	}
	sawRetry := false
	e.waitUntil("the cancel ends", 180*time.Second, func() bool {
		j := e.allJobs()[id]
		if j.State == "JOB_STATE_FAILED" {
			t.Fatalf("the job FAILED (%+v) with its copy in ECS", j.Error)
		}
		if j.State == "JOB_STATE_CANCELLING" && j.Error != nil && j.Error.Code == "CancelNotSupported" && j.NextAttemptTime != "" {
			sawRetry = true
		}
		return j.State == "JOB_STATE_CANCELLED"
	})
	if !sawRetry {
		t.Error("the job never showed CancelNotSupported with its next attempt")
	}
	if copies := e.copiesIn("cn-shanghai", imgWindows); len(copies) != 0 {
		t.Fatalf("%d copies left after the cancel: %v", len(copies), copies)
	}
	if n := e.stats()["CancelCopyImage"]["CancelNotSupported"]; n == 0 {
		t.Error("ECS never answered CancelNotSupported: the test did not test it")
	}
}

// TestCancelBeatsPolicyRun: a policy run lists ECS (seeing the job's
// copy), then pauses (failpoint) while the operator cancels the job and
// the copy is deleted; the run then goes on. It neither adopts the deleted
// copy nor makes a new one, and the plan shows the pair skipped with who
// cancelled it.
func TestCancelBeatsPolicyRun(t *testing.T) {
	e := newEnv(t, "--time-scale", "20")
	e.writeConfig(edgePolicy)
	fpDir := t.TempDir()
	e.daemon = start(t, "replicatord", append(credsEnv(),
		"REPLICATORD_FAILPOINTS=reconcile-after-list@2=pause", "REPLICATORD_FAILPOINT_DIR="+fpDir), "--config", e.config)
	e.daemon.waitLine("replicatord ready", 30*time.Second)
	var id string
	e.waitUntil("the policy's job copying", 90*time.Second, func() bool {
		for _, j := range e.allJobs() {
			if j.State == "JOB_STATE_COPYING" && j.DestinationImageID != "" {
				id = j.ID
				return true
			}
		}
		return false
	})
	copyID := e.allJobs()[id].DestinationImageID
	// The second run lists the copy, then pauses before reading the jobs.
	if out, code := e.ctl("reconcile", "edge"); code != 0 {
		t.Fatalf("reconcile: exit %d: %s", code, out)
	}
	e.waitUntil("the run paused after listing", 60*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(fpDir, "reconcile-after-list.reached"))
		return err == nil
	})
	if out, code := e.ctl("cancel", id); code != 0 {
		t.Fatalf("cancel: exit %d: %s", code, out)
	}
	e.waitState(id, "JOB_STATE_CANCELLED", 60*time.Second)
	if e.exists("cn-shanghai", copyID) {
		t.Fatal("the cancelled copy is still there")
	}
	if err := os.WriteFile(filepath.Join(fpDir, "reconcile-after-list.release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.daemon.waitFor("the paused run to end", 60*time.Second, func(l string) bool {
		return strings.Contains(l, "policy reconciled") && strings.Contains(l, "skipped_cancelled=1")
	})
	e.reconcileAndWait("edge") // and once more, for good measure
	jobs := e.allJobs()
	if len(jobs) != 1 || jobs[id].State != "JOB_STATE_CANCELLED" {
		t.Fatalf("jobs after the race: %+v, want only the cancelled one", jobs)
	}
	if copies := e.copiesIn("cn-shanghai", imgAlinux); len(copies) != 0 {
		t.Fatalf("a copy appeared after the cancel: %v", copies)
	}
	skipped := false
	for _, it := range e.plan() {
		if it.Action == "PLAN_ACTION_SKIPPED_CANCELLED" && it.SourceImageID == imgAlinux && strings.Contains(it.Reason, id) && strings.Contains(it.Reason, "api (") {
			skipped = true
		}
	}
	if !skipped {
		t.Errorf("plan does not show the pair skipped with who cancelled it: %v", e.plan())
	}
	// replctl retry is how the operator asks for it again.
	if out, code := e.ctl("retry", id); code != 0 {
		t.Fatalf("retry: exit %d: %s", code, out)
	}
	e.waitState(id, "JOB_STATE_SUCCEEDED", 120*time.Second)
}

// TestPolicyChangeLiftsCancel: after a cancel, the pair stays skipped
// until the operator asks again; a reload in which the policy changed and
// names the image (source.images.ids) is such a request.
func TestPolicyChangeLiftsCancel(t *testing.T) {
	e := newEnv(t, "--time-scale", "20")
	e.writeConfig(edgePolicy)
	e.startDaemon()
	var id string
	e.waitUntil("the policy's job copying", 90*time.Second, func() bool {
		for _, j := range e.allJobs() {
			if j.State == "JOB_STATE_COPYING" {
				id = j.ID
				return true
			}
		}
		return false
	})
	if out, code := e.ctl("cancel", id); code != 0 {
		t.Fatalf("cancel: exit %d: %s", code, out)
	}
	e.waitState(id, "JOB_STATE_CANCELLED", 60*time.Second)
	e.reconcileAndWait("edge")
	if jobs := e.allJobs(); len(jobs) != 1 {
		t.Fatalf("a run after the cancel made jobs: %+v", jobs)
	}
	// The policy now names the image: the operator asks for it again.
	e.writeConfig(strings.Replace(edgePolicy, "images: {tags: {os: alinux}}", "images: {ids: ["+imgAlinux+"]}", 1))
	if out, code := e.ctl("reload"); code != 0 {
		t.Fatalf("reload: exit %d: %s", code, out)
	}
	e.waitUntil("the image copied again", 120*time.Second, func() bool {
		for jid, j := range e.allJobs() {
			if jid != id && j.SourceImageID == imgAlinux && j.State == "JOB_STATE_SUCCEEDED" {
				return true
			}
		}
		return false
	})
	if st := e.allJobs()[id].State; st != "JOB_STATE_CANCELLED" {
		t.Errorf("the cancelled job is %s after the lift, want still CANCELLED", st)
	}
}
