package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The demo daemon (simulated cloud) restarted mid-copy finishes the copy
// without copying again: the in-process emulator keeps its state in the
// data dir, so the restart behaves like one against the real cloud.
func TestSimulatedCloudSurvivesDaemonRestart(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(`version: 1
daemon: {data_dir: data}
cloud:
  provider: simulated
  simulated: {time_scale: 100}
scheduler: {poll_min: 200ms, poll_max: 2s}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, socket: filepath.Join(dir, "data", "replicatord.sock")}
	boot := func() {
		t.Helper()
		e.daemon = start(t, "replicatord", nil, "--config", config)
		line := e.daemon.waitLine("ECS emulator at http://", 30*time.Second)
		e.endpoint = strings.Fields(line[strings.Index(line, "http://"):])[0]
		e.daemon.waitLine("replicatord ready", 30*time.Second)
	}
	boot()
	// 120 GiB: about 25 s at this time scale, so still Creating at the stop.
	out, code := e.ctl("copy", imgWindows, "--from", source, "--to", "eu-central-1", "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("copy: exit %d:\n%s", code, out)
	}
	var id string
	for k := range jobsIn(t, out) {
		id = k
	}
	e.waitState(id, "JOB_STATE_COPYING", 60*time.Second)
	out, _ = e.ctl("get", id, "-o", "json")
	copyID := jobsIn(t, out)[id].DestinationImageID
	if copyID == "" {
		t.Fatalf("job %s copying without a destination image:\n%s", id, out)
	}
	if n := e.stats()["CopyImage"]["200"]; n != 1 {
		t.Fatalf("CopyImage answered 200 %d times before the restart, want 1", n)
	}
	if e.daemon.stop() != 0 {
		t.Fatal("daemon did not stop cleanly")
	}

	boot()
	e.waitState(id, "JOB_STATE_SUCCEEDED", 2*time.Minute)
	out, _ = e.ctl("get", id, "-o", "json")
	if got := jobsIn(t, out)[id].DestinationImageID; got != copyID {
		t.Fatalf("after the restart the job names copy %s, want %s", got, copyID)
	}
	// The restarted emulator's counters start at zero: no CopyImage since.
	if n := sum(e.stats()["CopyImage"]); n != 0 {
		t.Fatalf("the restarted daemon called CopyImage %d times; the copy was made again", n)
	}
	// And the simulated cloud holds exactly that one copy.
	raw, err := os.ReadFile(filepath.Join(dir, "data", "simulated-cloud.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Images []struct {
			ID, Region string
			Copy       *struct{ SourceID string } `json:"copy"`
		} `json:"images"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	var copies []string
	for _, im := range st.Images {
		if im.Copy != nil {
			copies = append(copies, im.Region+"/"+im.ID)
		}
	}
	if len(copies) != 1 || copies[0] != "eu-central-1/"+copyID {
		t.Fatalf("simulated cloud holds copies %v, want just eu-central-1/%s", copies, copyID)
	}
}
