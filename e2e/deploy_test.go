package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/policy"
)

// The sample config for a real account loads with the daemon's own parser.
func TestDeploySampleConfig(t *testing.T) {
	f, err := policy.Load("../deploy/replicatord.yaml")
	if err != nil {
		t.Fatalf("deploy/replicatord.yaml does not load:\n%v", err)
	}
	if f.Cloud.Provider != policy.ProviderAliyun {
		t.Errorf("provider %q, want aliyun (the sample is for a real account)", f.Cloud.Provider)
	}
	if f.Daemon.DataDir != "/var/lib/replicatord" || f.Daemon.MetricsListen != "127.0.0.1:9464" ||
		!strings.HasPrefix(f.Daemon.Listen, "unix:///run/replicatord/") {
		t.Errorf("daemon settings %+v do not match the unit's StateDirectory/RuntimeDirectory", f.Daemon)
	}
	if len(f.Policies) == 0 {
		t.Errorf("the sample has no policy")
	}
}

// The RAM policy grants exactly the ECS actions the adapter calls: every
// ecs.Create<Action>Request in internal/cloud/aliyun, no more.
func TestDeployRAMPolicy(t *testing.T) {
	var used []string
	re := regexp.MustCompile(`ecs\.Create(\w+)Request\(`)
	files, err := filepath.Glob("../internal/cloud/aliyun/*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			used = append(used, "ecs:"+m[1])
		}
	}
	slices.Sort(used)
	used = slices.Compact(used)
	if len(used) == 0 {
		t.Fatal("found no ecs.Create*Request calls in internal/cloud/aliyun")
	}

	data, err := os.ReadFile("../deploy/ram-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   string
		Statement []struct {
			Effect    string
			Action    []string
			Resource  any
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("deploy/ram-policy.json: %v", err)
	}
	var granted []string
	for _, st := range doc.Statement {
		if st.Effect == "Allow" {
			granted = append(granted, st.Action...)
		}
	}
	slices.Sort(granted)
	if doc.Version != "1" || !slices.Equal(granted, used) {
		t.Errorf("deploy/ram-policy.json (version %q) grants %v; the adapter calls %v", doc.Version, granted, used)
	}

	// Scoped by the owner tag: every action that changes or removes an
	// image is allowed only on images carrying the sample config's owner
	// (acs:ResourceTag), creating a copy and tagging only with that owner
	// tag in the request (acs:RequestTag), and an image that already has
	// an owner tag is never re-tagged. Reads alone are unconditional.
	f, err := policy.Load("../deploy/replicatord.yaml")
	if err != nil {
		t.Fatal(err)
	}
	owner := f.Daemon.Owner
	resourceKey, requestKey := "acs:ResourceTag/"+job.TagOwner, "acs:RequestTag/"+job.TagOwner
	want := map[string]string{ // action -> the condition key its Allow needs
		"ecs:CancelCopyImage": resourceKey, "ecs:DeleteImage": resourceKey,
		"ecs:ModifyImageAttribute": resourceKey, "ecs:ModifyImageSharePermission": resourceKey,
		"ecs:CopyImage": requestKey, "ecs:TagResources": requestKey,
		"ecs:DescribeImages": "", "ecs:DescribeRegions": "",
	}
	for _, a := range used {
		if _, ok := want[a]; !ok {
			t.Errorf("the adapter calls %s, which this test does not classify as read, create or change: add it", a)
		}
	}
	denyRetag := false
	for _, st := range doc.Statement {
		switch st.Effect {
		case "Allow":
			for _, a := range st.Action {
				key := want[a]
				got := st.Condition["StringEquals"][key]
				switch {
				case key == "" && len(st.Condition) != 0:
					t.Errorf("%s (a read) has a condition %v", a, st.Condition)
				case key != "" && got != owner:
					t.Errorf("%s is allowed without %s = %q (the owner of deploy/replicatord.yaml): condition %v", a, key, owner, st.Condition)
				}
			}
		case "Deny":
			if slices.Contains(st.Action, "ecs:TagResources") && st.Condition["Null"][resourceKey] == "false" {
				denyRetag = true
			}
		}
	}
	if !denyRetag {
		t.Error("deploy/ram-policy.json does not deny TagResources on images that already carry an owner tag")
	}
}

// The systemd unit is hardened as documented and, where systemd-analyze
// exists, valid.
func TestDeploySystemdUnit(t *testing.T) {
	data, err := os.ReadFile("../deploy/replicatord.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, want := range []string{
		"User=replicatord", "StateDirectory=replicatord", "RuntimeDirectory=replicatord",
		"ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n",
		"ExecReload=/bin/kill -HUP $MAINPID", "EnvironmentFile=/etc/replicatord/credentials.env",
		"Restart=on-failure", "ExecStart=/usr/local/bin/replicatord --config /etc/replicatord/replicatord.yaml",
		"LimitCORE=0", "RestartPreventExitStatus=2", "--listen unix:///run/replicatord/replicatord.sock",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("deploy/replicatord.service lacks %q", strings.TrimSpace(want))
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: unit syntax not checked")
	}
	// verify wants the binary ExecStart names and the unit under a
	// directory of its own; point ExecStart at the freshly built daemon.
	dir := t.TempDir()
	unit = strings.ReplaceAll(unit, "/usr/local/bin/replicatord", filepath.Join(binDir, "replicatord"))
	path := filepath.Join(dir, "replicatord.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "System has not been booted with systemd") || strings.Contains(string(out), "Failed to connect") ||
			strings.Contains(string(out), "Failed to initialize manager") {
			t.Skipf("systemd-analyze cannot run here: %s", out)
		}
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "replicatord.service:") {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
}
