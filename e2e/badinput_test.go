package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bad input gets a clear error and changes nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()

	jobsNow := func() string {
		out, code := e.ctl("jobs", "-o", "json")
		if code != 0 {
			t.Fatalf("replctl jobs exit %d: %s", code, out)
		}
		return out
	}
	before := jobsNow()

	cases := []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"unknown region", []string{"copy", imgAlinux, "--from", source, "--to", "mars-north-1"}, 13, []string{"destination_regions", "mars-north-1"}},
		{"unknown source region", []string{"copy", imgAlinux, "--from", "mars-north-1", "--to", "cn-beijing"}, 13, []string{"source_region"}},
		{"destination equals source", []string{"copy", imgAlinux, "--from", source, "--to", source}, 13, []string{"destination_regions", "source region"}},
		{"bad image id", []string{"copy", "not-an-image", "--from", source, "--to", "cn-beijing"}, 13, []string{"source_image_id"}},
		{"unknown image", []string{"copy", "m-doesnotexist000000000", "--from", source, "--to", "cn-beijing"}, 15, []string{"m-doesnotexist000000000", "not found"}},
		{"unknown job", []string{"get", "j-00000000000000000000000000"}, 15, []string{"j-00000000000000000000000000"}},
		{"bad job id", []string{"cancel", "nope"}, 13, []string{"job_ids"}},
		{"escape in description", []string{"copy", imgAlinux, "--from", source, "--to", "cn-beijing", "--description", "red \x1b[31m text"}, 13, []string{"destination_description", "U+001B"}},
		{"newline in tag value", []string{"copy", imgAlinux, "--from", source, "--to", "cn-beijing", "--tag", "team=a\nb"}, 13, []string{"tags", "U+000A"}},
		{"tab in tag key", []string{"copy", imgAlinux, "--from", source, "--to", "cn-beijing", "--tag", "te\tam=x"}, 13, []string{"tags", "U+0009"}},
		{"reserved tag, capital R", []string{"copy", imgAlinux, "--from", source, "--to", "cn-beijing", "--tag", "Replicatord:policy=x"}, 13, []string{"tags", "Replicatord:policy", "reserved"}},
		{"100 KiB policy name", []string{"reconcile", strings.Repeat("p", 100<<10)}, 15, []string{"policy", "…(102400 bytes)"}},
		{"100 KiB region", []string{"copy", imgAlinux, "--from", source, "--to", "cn-" + strings.Repeat("a", 100<<10)}, 13, []string{"destination_regions", "…(102403 bytes)"}},
	}
	for _, c := range cases {
		out, code := e.ctl(c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d; output: %.500s", c.name, code, c.code, out)
		}
		if len(out) > 2000 {
			t.Errorf("%s: the error echoes %d bytes of input; values must be clipped", c.name, len(out))
		}
		for _, w := range c.wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output %q does not name %q", c.name, out, w)
			}
		}
	}
	// An empty image id is refused before anything is sent.
	if out, code := e.ctl("copy", "", "--from", source, "--to", "cn-beijing"); code == 0 || !strings.Contains(strings.ToLower(out), "image") {
		t.Errorf("empty image id: exit %d, %q", code, out)
	}
	if after := jobsNow(); after != before {
		t.Errorf("bad requests changed the jobs:\nbefore %s\nafter %s", before, after)
	}
	// Nor do they make huge log lines.
	for _, l := range strings.Split(e.daemon.output(), "\n") {
		if len(l) > 4096 {
			t.Errorf("a %d-byte daemon log line: %.300s", len(l), l)
		}
	}

	// A second daemon on the same data dir fails fast with a clear error.
	second := start(t, "replicatord", credsEnv(), "--config", e.config)
	if code := second.wait(20 * time.Second); code == 0 {
		t.Fatalf("second daemon exited 0")
	}
	if out := second.output(); !strings.Contains(out, "in use") {
		t.Errorf("second daemon's error does not say the state file is in use: %s", out)
	}
	// The first daemon still serves.
	if _, code := e.ctl("jobs"); code != 0 {
		t.Errorf("first daemon stopped serving after the second one failed")
	}
}

// A malformed config file is refused with file:line:column, and the daemon
// does not start.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		yaml  string
		wants []string
	}{
		"syntax":      {"version: 1\ncloud: {provider: simulated\n", []string{"bad.yaml:"}},
		"unknown key": {"version: 1\ncloud: {provider: simulated}\nshceduler: {}\n", []string{"bad.yaml:3:", "shceduler"}},
		"version":     {"version: 7\ncloud: {provider: simulated}\n", []string{"bad.yaml:1:", "version"}},
		"control characters and reserved prefix": {"version: 1\ncloud: {provider: simulated}\npolicies:\n  - name: p\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n    copy:\n      tags: {\"te\\0am\": x, Replicatord:policy: y}\n      description: \"a\\eb\"\n",
			[]string{"bad.yaml:8:", `tag key "te\x00am" contains the control character U+0000`, `tag key "Replicatord:policy" is reserved`, "bad.yaml:9:", "U+001B"}},
	}
	for name, c := range cases {
		path := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		p := start(t, "replicatord", nil, "--config", path, "--data-dir", filepath.Join(dir, "data-"+strings.ReplaceAll(name, " ", "-")))
		if code := p.wait(20 * time.Second); code != 2 {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
		out := p.output()
		for _, w := range c.wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not contain %q:\n%s", name, w, out)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "data-"+strings.ReplaceAll(name, " ", "-"), "state.db")); err == nil {
			t.Errorf("%s: a state file was created by a daemon that refused its config", name)
		}
	}
}
