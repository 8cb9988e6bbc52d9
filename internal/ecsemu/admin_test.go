package ecsemu_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

// admin sends an admin request and decodes the JSON answer into v.
func (r *rig) admin(method, path, body string, v any) int {
	r.t.Helper()
	req, err := http.NewRequest(method, r.srv.URL+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			r.t.Fatalf("%s %s: %d, body not JSON: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func TestAdminStats(t *testing.T) {
	r := newRig(t, nil)
	r.c.ok("DescribeRegions")
	r.c.fails(404, "InvalidImageId.NotFound", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", "m-bp1000000000000000000", "DestinationRegionId", "cn-beijing")
	r.c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing")
	r.c.fails(404, "InvalidAction.NotFound", "StartInstance", "RegionId", "cn-hangzhou")

	var st ecsemu.Stats
	if code := r.admin("GET", "/_ecsemu/stats", "", &st); code != 200 {
		t.Fatalf("stats: %d", code)
	}
	if st.Calls["DescribeRegions"]["200"] != 1 || st.Calls["CopyImage"]["200"] != 1 || st.Calls["CopyImage"]["InvalidImageId.NotFound"] != 1 || st.Calls["(unknown)"]["InvalidAction.NotFound"] != 1 {
		t.Fatalf("calls %v", st.Calls)
	}
	if st.Images["cn-hangzhou"]["Available"] != 10 || st.Images["cn-hangzhou"]["Creating"] != 1 || st.Images["cn-beijing"]["Creating"] != 1 {
		t.Fatalf("images %v", st.Images)
	}
	if st.Copies["cn-beijing"]["Creating"] != 1 || st.CopiesSubmitted["cn-beijing"] != 1 {
		t.Fatalf("copies %v %v", st.Copies, st.CopiesSubmitted)
	}
	if st.CopiedSnapshotGiB["cn-beijing"] != 40 || st.SnapshotGiB["cn-beijing"] != 40 || st.SnapshotGiB["cn-hangzhou"] < 40 {
		t.Fatalf("snapshot GiB %v / %v", st.SnapshotGiB, st.CopiedSnapshotGiB)
	}
	if !st.Time.Equal(t0) {
		t.Fatalf("stats time %v", st.Time)
	}

	// reset zeroes counters and keeps state; reset?state=true restores fixtures.
	if code := r.admin("POST", "/_ecsemu/reset", "", nil); code != 200 {
		t.Fatal(code)
	}
	st = r.emu.Stats()
	if len(st.Calls) != 0 || st.Copies["cn-beijing"]["Creating"] != 1 {
		t.Fatalf("after reset: calls %v copies %v", st.Calls, st.Copies)
	}
	r.admin("POST", "/_ecsemu/reset?state=true", "", nil)
	if st = r.emu.Stats(); len(st.Copies) != 0 || st.Images["cn-hangzhou"]["Available"] != 10 {
		t.Fatalf("after state reset: copies %v images %v", st.Copies, st.Images)
	}

	var imgs []map[string]any
	r.admin("GET", "/_ecsemu/images?region=ap-southeast-1", "", &imgs)
	if len(imgs) != 1 || imgs[0]["region"] != "ap-southeast-1" {
		t.Fatalf("admin images: %v", imgs)
	}
}

func TestAdminFaults(t *testing.T) {
	r := newRig(t, nil)
	var faults map[string]ecsemu.Fault
	code := r.admin("PUT", "/_ecsemu/faults", `{"action":"DescribeRegions","fault":{"unavailableRate":1,"latency":"0s"}}`, &faults)
	if code != 200 || faults["DescribeRegions"].UnavailableRate != 1 {
		t.Fatalf("PUT faults: %d %v", code, faults)
	}
	r.c.fails(503, "ServiceUnavailable", "DescribeRegions")
	r.admin("GET", "/_ecsemu/faults", "", &faults)
	if len(faults) != 1 {
		t.Fatalf("GET faults %v", faults)
	}
	r.admin("DELETE", "/_ecsemu/faults", "", nil)
	r.c.ok("DescribeRegions")

	bad := map[string]string{
		"not JSON":       `{"action":`,
		"unknown field":  `{"action":"CopyImage","fault":{"errorRate":1}}`,
		"unknown action": `{"action":"RunInstances","fault":{}}`,
		"no action":      `{"fault":{}}`,
		"no fault":       `{"action":"CopyImage"}`,
		"unknown region": `{"action":"DescribeImages@xx-nowhere-1","fault":{"unavailableRate":1}}`,
		"scoped unknown": `{"action":"Nothing@cn-beijing","fault":{"unavailableRate":1}}`,
		"rate above 1":   `{"action":"CopyImage","fault":{"hangRate":1.5}}`,
		"rates sum >1":   `{"action":"CopyImage","fault":{"hangRate":0.6,"dropRate":0.6}}`,
		"bad latency":    `{"action":"CopyImage","fault":{"latency":"soon"}}`,
		"negative":       `{"action":"*","fault":{"latency":"-1s"}}`,
		"trailing data":  `{"action":"*","fault":{}} {}`,
		"empty body":     ``,
		"too large":      `{"action":"` + strings.Repeat("x", 70000) + `"}`,
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			var e map[string]string
			if code := r.admin("PUT", "/_ecsemu/faults", body, &e); code != 400 || e["error"] == "" {
				t.Fatalf("%d %v", code, e)
			}
		})
	}
	var e map[string]string
	if code := r.admin("GET", "/_ecsemu/nothing", "", &e); code != 404 || !strings.Contains(e["error"], "/_ecsemu/stats") {
		t.Fatalf("unknown admin path: %d %v", code, e)
	}
}

func TestAdminConfig(t *testing.T) {
	r := newRig(t, nil)
	// A fault under a name New would refuse does not block config changes.
	r.emu.SetFaults("NoSuchAction", ecsemu.Fault{HangRate: 0.5})
	var cfg map[string]any
	r.admin("GET", "/_ecsemu/config", "", &cfg)
	if cfg["throttleRate"].(float64) != 1000 || cfg["copySlotsPerRegion"].(float64) != 5 || cfg["startupDelay"] != "30s" {
		t.Fatalf("config %v", cfg)
	}
	if code := r.admin("PUT", "/_ecsemu/config", `{"throttleRate":2,"complianceRule":"mainland-only","startupDelay":"1s","timeScale":2}`, &cfg); code != 200 {
		t.Fatalf("PUT config %d %v", code, cfg)
	}
	r.c.ok("DescribeRegions")
	r.c.ok("DescribeRegions")
	r.c.fails(400, "Throttling.User", "DescribeRegions")
	r.c.fails(403, "OperationDenied.NonCompliantDestinationRegion", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "DestinationRegionId", "us-west-1")
	// New copies use the new time knobs: (1 s + 40 GiB at 50 MiB/s) / 2.
	id := r.c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing")
	r.clk.Step(secs((1 + 40*1024/50.0) / 2))
	if r.c.statusOf("cn-beijing", id) != "Available" {
		t.Fatal("copy did not use the patched time knobs")
	}

	for name, body := range map[string]string{
		"bad rule":      `{"complianceRule":"eu-only"}`,
		"bad route":     `{"routeRates":{"cn-hangzhou-cn-beijing":10}}`,
		"bad share":     `{"createFailedRate":2}`,
		"unknown field": `{"slots":3}`,
		"bad duration":  `{"startupDelay":"soon"}`,
		"bad burst":     `{"throttleBurst":-1}`,
	} {
		var e map[string]string
		if code := r.admin("PUT", "/_ecsemu/config", body, &e); code != 400 || e["error"] == "" {
			t.Fatalf("%s: %d %v", name, code, e)
		}
	}
}

// PUT throttleBurst resizes the bucket at run time: three calls pass at a
// rate of one a minute, the fourth is throttled.
func TestAdminConfigThrottleBurst(t *testing.T) {
	r := newRig(t, nil)
	var cfg map[string]any
	if code := r.admin("PUT", "/_ecsemu/config", `{"throttleRate":1,"throttleBurst":3}`, &cfg); code != 200 || cfg["throttleBurst"].(float64) != 3 {
		t.Fatalf("PUT config %d %v", code, cfg)
	}
	for range 3 {
		r.c.ok("DescribeRegions")
	}
	r.c.fails(400, "Throttling.User", "DescribeRegions")
}

// POST /_ecsemu/images adds a source image at run time (a new build for a
// policy to find); bad or clashing images are refused and change nothing.
func TestAdminAddImage(t *testing.T) {
	r := newRig(t, nil)
	good := `{"region":"cn-hangzhou","id":"m-bp1newbuild000000001","name":"golden-ubuntu-22.04-20261201","sizeGiB":40,"status":"Available","tags":{"role":"golden"}}`
	var out map[string]string
	if code := r.admin("POST", "/_ecsemu/images", good, &out); code != 201 || out["added"] != "m-bp1newbuild000000001" {
		t.Fatalf("add: %d %v", code, out)
	}
	r.c.copyImage("cn-hangzhou", "m-bp1newbuild000000001", "cn-beijing")
	for _, bad := range []struct{ body, want string }{
		{good, "already used"},
		{strings.Replace(good, "m-bp1newbuild000000001", "m-bp1newbuild000000002", 1), "already used in cn-hangzhou"},
		{`{"region":"mars-1","id":"m-bp1newbuild000000003","name":"x1","sizeGiB":1,"status":"Available"}`, "unknown region"},
		{`{"region":"cn-hangzhou","id":"m-1","name":"x1","sizeGiB":1,"status":"Available"}`, "id must be"},
		{`{"regoin":"cn-hangzhou"}`, "unknown field"},
	} {
		var e map[string]string
		if code := r.admin("POST", "/_ecsemu/images", bad.body, &e); code != 400 || !strings.Contains(e["error"], bad.want) {
			t.Errorf("add %s: %d %v, want 400 with %q", bad.body, code, e, bad.want)
		}
	}
}
