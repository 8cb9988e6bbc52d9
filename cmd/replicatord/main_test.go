package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/state"
)

// Flag and config errors exit 2 with a message that names the problem,
// before anything is started or written.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\ncloud: {provider: simulated}\npolicies: [{name: Bad Name}]\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{nil, "--config is required"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{[]string{"--config", bad, "--data-dir", filepath.Join(dir, "d")}, "bad.yaml:3:"},
		{[]string{"--config", bad, "--reflection", "maybe"}, "--reflection must be true or false"},
		{[]string{"--config", bad, "--shutdown-grace", "-1s"}, "--shutdown-grace must be positive"},
		{[]string{"--config", bad, "extra"}, `unexpected argument "extra"`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %s", c.args, code, exitUsage, errb.String())
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: stderr %q does not contain %q", c.args, errb.String(), c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); err == nil {
		t.Error("a refused config created the data dir")
	}
}

func TestCheckState(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "state.db")
	st, err := state.Open(good, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"--check-state", good}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "ok") {
		t.Fatalf("good file: exit %d %q %q", code, out.String(), errb.String())
	}
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600)
	out.Reset()
	errb.Reset()
	if code := run([]string{"--check-state", garbage}, &out, &errb); code != exitFailed || !strings.Contains(errb.String(), "garbage.db") {
		t.Fatalf("garbage file: exit %d %q", code, errb.String())
	}
	// A 0-byte file is named as such (it used to be "bad file descriptor").
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	out.Reset()
	errb.Reset()
	if code := run([]string{"--check-state", empty}, &out, &errb); code != exitFailed || !strings.Contains(errb.String(), "empty (0 bytes)") || strings.Contains(errb.String(), "bad file descriptor") {
		t.Fatalf("empty file: exit %d %q", code, errb.String())
	}
}

func TestCompactStateFlag(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "state.db")
	st, err := state.Open(good, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"--compact-state", good}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "state.db: compacted from") {
		t.Fatalf("good file: exit %d %q %q", code, out.String(), errb.String())
	}
	garbage := filepath.Join(dir, "garbage.db")
	junk := bytes.Repeat([]byte("not a database "), 1000)
	os.WriteFile(garbage, junk, 0o600)
	out.Reset()
	errb.Reset()
	if code := run([]string{"--compact-state", garbage}, &out, &errb); code != exitFailed || !strings.Contains(errb.String(), "garbage.db") {
		t.Fatalf("garbage file: exit %d %q", code, errb.String())
	}
	if b, _ := os.ReadFile(garbage); !bytes.Equal(b, junk) {
		t.Error("a refused --compact-state changed the file")
	}
	errb.Reset()
	if code := run([]string{"--compact-state", good, "--check-state", good}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "one at a time") {
		t.Fatalf("both flags: exit %d %q", code, errb.String())
	}
}

func TestNewLogger(t *testing.T) {
	var b bytes.Buffer
	l, err := newLogger(&b, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hello", "k", "v")
	if !strings.Contains(b.String(), `"msg":"hello"`) {
		t.Fatalf("json log %q", b.String())
	}
	if _, err := newLogger(&b, "xml", ""); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Fatalf("bad format: %v", err)
	}
	if _, err := newLogger(&b, "", "loud"); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Fatalf("bad level: %v", err)
	}
}

// TestAllConfigErrorsAtOnce: the file's own problems, a region the cloud
// does not know, and a bad flag are reported together in one start, exit
// 2, and nothing is created on disk (data dir, state.db, socket).
func TestAllConfigErrorsAtOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(`version: 1
cloud: {provider: simulated}
daemon: {log_level: loud}
policies:
  - name: a
    source: {region: cn-hangzhou, images: {name: "x-*"}}
    destinations: [cn-beijing, xx-nowhere-1]
    interval: 1s
`), 0o600)
	data := filepath.Join(dir, "data")
	var out, errb bytes.Buffer
	code := run([]string{"--config", cfg, "--data-dir", data, "--metrics-listen", "nope"}, &out, &errb)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errb.String())
	}
	for _, want := range []string{`log_level: "loud"`, "interval", "destination region xx-nowhere-1 is not a region this account can use", `--metrics-listen "nope"`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("a refused config created the data dir")
	}
}

func TestVersionFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, &out, &errb); code != exitOK || !strings.HasPrefix(out.String(), "replicatord ") {
		t.Fatalf("--version: exit %d %q %q", code, out.String(), errb.String())
	}
	buildVersion = "v9.8.7-test"
	defer func() { buildVersion = "" }()
	out.Reset()
	run([]string{"--version"}, &out, &errb)
	if !strings.HasPrefix(out.String(), "replicatord v9.8.7-test ") {
		t.Errorf("with the -ldflags override: %q", out.String())
	}
}
