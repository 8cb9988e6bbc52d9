package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/job"
)

const goldenPolicies = `policies:
  - name: golden
    source:
      region: cn-hangzhou
      images: {tags: {role: golden}}
    destinations: [cn-shanghai, cn-beijing, ap-southeast-1]
    copy:
      name: "{{.SourceName}}-{{.DestinationRegion}}"
      tags: {team: platform}
      copy_source_tags: true
      image_family: inherit
      share_with_accounts: ["1234567890"]
    retention: {keep_last: 1, per_family: true}
    interval: 10m
  - name: warehouse
    source:
      region: cn-hangzhou
      images: {tags: {role: data}}
    destinations: [cn-beijing]
    max_size_gib: 200
    interval: 10m
`

// The golden images of ecsemu's demo set, newest of each family (keep_last
// 1 per family): name and family.
var goldenNewest = map[string]string{
	"golden-ubuntu-22.04-20261101": "golden-ubuntu-22.04",
	"golden-ubuntu-24.04-20261101": "golden-ubuntu-24.04",
	"golden-alinux3-20261104":      "golden-alinux3",
	"golden-rocky-9.4-20261020":    "golden-rocky-9",
	"golden-windows-2022-20261028": "golden-windows-2022",
}

var goldenRegions = []string{"cn-shanghai", "cn-beijing", "ap-southeast-1"}

type adminImage struct {
	Region      string   `json:"region"`
	ImageID     string   `json:"ImageId"`
	ImageName   string   `json:"ImageName"`
	Status      string   `json:"Status"`
	ImageFamily string   `json:"ImageFamily"`
	SharedWith  []string `json:"sharedWith"`
}

func (e *env) adminImages(region string) map[string]adminImage {
	e.t.Helper()
	resp, err := http.Get(e.endpoint + "/_ecsemu/images?region=" + region)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []adminImage
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]adminImage{}
	for _, im := range list {
		out[im.ImageName] = im
	}
	return out
}

func (e *env) stats() map[string]map[string]int64 {
	e.t.Helper()
	resp, err := http.Get(e.endpoint + "/_ecsemu/stats")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Calls map[string]map[string]int64 `json:"calls"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		e.t.Fatal(err)
	}
	return st.Calls
}

// waitCopies waits until cond holds for the copies in the golden regions.
func (e *env) waitCopies(what string, cond func(map[string]map[string]adminImage) bool) {
	e.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		all := map[string]map[string]adminImage{}
		for _, r := range goldenRegions {
			all[r] = e.adminImages(r)
		}
		if cond(all) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not reached; copies: %v", what, all)
		}
		time.Sleep(200 * time.Millisecond) // poll ECS's state, as an operator would
	}
}

// waitJobs waits until a policy has n SUCCEEDED jobs (post-copy actions
// done) and none in flight.
func (e *env) waitJobs(policy string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		out, _ := e.ctl("jobs", "--policy", policy, "--all", "-o", "json")
		done, busy := 0, 0
		for _, j := range jobsIn(e.t, out) {
			switch j.State {
			case "JOB_STATE_SUCCEEDED":
				done++
			case "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_PRUNED":
			default:
				busy++
			}
		}
		if done >= n && busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("policy %s: %d jobs SUCCEEDED and %d in flight, want %d done", policy, done, busy, n)
		}
		time.Sleep(200 * time.Millisecond) // poll the daemon, as an operator would
	}
}

func available(all map[string]map[string]adminImage, names map[string]string) bool {
	for _, r := range goldenRegions {
		for n := range names {
			if im, ok := all[r][n+"-"+r]; !ok || im.Status != "Available" {
				return false
			}
		}
	}
	return true
}

func TestPolicyConverges(t *testing.T) {
	e := newEnv(t, "--time-scale", "400")
	e.writeConfig(goldenPolicies)
	e.startDaemon()

	// Converge: every newest golden image in every region, named by the
	// template, with lineage and source tags, family and sharing set.
	e.waitCopies("golden copies Available", func(all map[string]map[string]adminImage) bool { return available(all, goldenNewest) })
	e.waitJobs("golden", len(goldenNewest)*len(goldenRegions))
	for _, r := range goldenRegions {
		imgs, err := e.cloud.DescribeImages(context.Background(), cloud.ImageQuery{Region: r, Statuses: cloud.AllStatuses})
		if err != nil {
			t.Fatal(err)
		}
		admin := e.adminImages(r)
		n := 0
		for _, im := range imgs {
			if im.Tags[job.TagPolicy] != "golden" {
				continue
			}
			n++
			base := strings.TrimSuffix(im.Name, "-"+r)
			if goldenNewest[base] == "" {
				t.Errorf("%s: unexpected copy %s", r, im.Name)
				continue
			}
			if im.Tags["role"] != "golden" || im.Tags["team"] != "platform" || im.Tags[job.TagJobID] == "" || im.Tags[job.TagSourceImage] == "" {
				t.Errorf("%s %s: tags %v lack source, policy or lineage tags", r, im.Name, im.Tags)
			}
			if im.Family != goldenNewest[base] {
				t.Errorf("%s %s: family %q, want %q", r, im.Name, im.Family, goldenNewest[base])
			}
			if sw := admin[im.Name].SharedWith; len(sw) != 1 || sw[0] != "1234567890" {
				t.Errorf("%s %s: shared with %v", r, im.Name, sw)
			}
		}
		if n != len(goldenNewest) {
			t.Errorf("%s holds %d golden copies, want %d", r, n, len(goldenNewest))
		}
	}

	// The 320 GiB warehouse image is reported blocked, never attempted.
	out, code := e.ctl("plan", "warehouse", "-o", "json")
	if code != 0 || !strings.Contains(out, "PLAN_ACTION_BLOCKED") || !strings.Contains(out, "max_size_gib") {
		t.Errorf("plan warehouse: exit %d: %s", code, out)
	}
	if n := e.stats()["CopyImage"]["SizeExceed.Image"]; n != 0 {
		t.Errorf("the too-large source was attempted %d times", n)
	}

	// A plan changes nothing in ECS: only DescribeImages calls are added.
	before := e.stats()
	if out, code := e.ctl("plan"); code != 0 || !strings.Contains(out, "EXISTS") {
		t.Fatalf("plan: exit %d: %s", code, out)
	}
	after := e.stats()
	for action := range after {
		if action == "DescribeImages" {
			continue
		}
		if sum(after[action]) != sum(before[action]) {
			t.Errorf("plan called %s: %v -> %v", action, before[action], after[action])
		}
	}

	// A copy deleted by hand comes back.
	victim := e.adminImages("cn-beijing")["golden-alinux3-20261104-cn-beijing"]
	if err := e.cloud.UnshareImage(context.Background(), "cn-beijing", victim.ImageID, []string{"1234567890"}); err != nil {
		t.Fatal(err)
	}
	if err := e.cloud.DeleteImage(context.Background(), "cn-beijing", victim.ImageID); err != nil {
		t.Fatal(err)
	}
	if out, code := e.ctl("reconcile", "golden"); code != 0 {
		t.Fatalf("reconcile: exit %d: %s", code, out)
	}
	e.waitCopies("deleted copy made again", func(all map[string]map[string]adminImage) bool {
		im, ok := all["cn-beijing"]["golden-alinux3-20261104-cn-beijing"]
		return ok && im.Status == "Available" && im.ImageID != victim.ImageID
	})

	// A new golden build appears: it is copied everywhere, and retention
	// (keep_last 1 per family) prunes the copies of the build it replaces.
	newBuild := `{"region":"cn-hangzhou","id":"m-bp1newgolden00000001","name":"golden-ubuntu-22.04-20261201","sizeGiB":40,"status":"Available","family":"golden-ubuntu-22.04","creationTime":"2026-12-01T03:00:00Z","tags":{"role":"golden","team":"platform"}}`
	resp, err := http.Post(e.endpoint+"/_ecsemu/images", "application/json", bytes.NewReader([]byte(newBuild)))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("add image: %v %v", resp, err)
	}
	resp.Body.Close()
	e.ctl("reconcile", "golden")
	want := map[string]string{"golden-ubuntu-22.04-20261201": "golden-ubuntu-22.04"}
	e.waitCopies("new build copied", func(all map[string]map[string]adminImage) bool { return available(all, want) })
	e.ctl("reconcile", "golden") // the next run prunes
	e.waitCopies("old build pruned", func(all map[string]map[string]adminImage) bool {
		for _, r := range goldenRegions {
			if _, ok := all[r]["golden-ubuntu-22.04-20261101-"+r]; ok {
				return false
			}
		}
		return true
	})

	// A reload with a broken file changes nothing and returns every error.
	good, _ := os.ReadFile(e.config)
	broken := strings.Replace(string(good), "interval: 10m\n  - name: warehouse", "interval: 10s\n    colour: blue\n  - name: warehouse", 1)
	if err := os.WriteFile(e.config, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	policiesBefore, _ := e.ctl("policies", "-o", "json")
	out, code = e.ctl("reload")
	if code != 1 || !strings.Contains(out, "interval") || !strings.Contains(out, "colour") || !strings.Contains(out, e.config+":") {
		t.Errorf("reload of a broken file: exit %d, want 1 with both errors located:\n%s", code, out)
	}
	if after, _ := e.ctl("policies", "-o", "json"); stripTimes(after) != stripTimes(policiesBefore) {
		t.Errorf("a refused reload changed the policies:\n%s\n%s", policiesBefore, after)
	}

	// A valid file that names another store is refused too: a store
	// change needs a restart.
	moved := strings.Replace(string(good), "version: 1\n", "version: 1\nstore: {backend: etcd, etcd: {endpoints: [\"https://etcd.invalid:2379\"]}}\n", 1)
	if moved == string(good) {
		t.Fatal("the config has no \"version: 1\" line to put a store section after")
	}
	if err := os.WriteFile(e.config, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = e.ctl("reload")
	if code == 0 || !strings.Contains(out, "store change needs a restart") || !strings.Contains(out, "keeps bbolt") {
		t.Errorf("reload of a file with another store: exit %d, want a refusal saying a restart is needed:\n%s", code, out)
	}
	if after, _ := e.ctl("policies", "-o", "json"); stripTimes(after) != stripTimes(policiesBefore) {
		t.Errorf("a reload refused for its store changed the policies:\n%s\n%s", policiesBefore, after)
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// stripTimes drops the reconcile times, which move by themselves.
func stripTimes(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			out = append(out, l)
			continue
		}
		delete(m, "lastReconcileTime")
		delete(m, "nextReconcileTime")
		delete(m, "jobCounts")
		b, _ := json.Marshal(m)
		out = append(out, string(b))
	}
	return strings.Join(out, "\n")
}
