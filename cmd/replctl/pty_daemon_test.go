package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests in this file run replctl against the real daemon and ecsemu,
// built once next to replctlBin.
var (
	daemonBinsOnce sync.Once
	daemonBinsErr  error
)

func daemonBins(t *testing.T) (replicatord, ecsemu string) {
	t.Helper()
	dir := filepath.Dir(replctlBin)
	daemonBinsOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../replicatord", "../ecsemu").CombinedOutput()
		if err != nil {
			daemonBinsErr = fmt.Errorf("building replicatord and ecsemu: %v\n%s", err, out)
		}
	})
	if daemonBinsErr != nil {
		t.Fatal(daemonBinsErr)
	}
	return filepath.Join(dir, "replicatord"), filepath.Join(dir, "ecsemu")
}

var daemonCreds = []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIptytest0001", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=pty-secret-0001"}

// bgProc is a background process whose combined output is collected.
type bgProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startBG(t *testing.T, bin string, env []string, args ...string) *bgProc {
	t.Helper()
	p := &bgProc{cmd: exec.Command(bin, args...), out: newSyncBuffer(), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.out.String())
		}
	})
	return p
}

// stop ends the process with SIGTERM and waits for it.
func (p *bgProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("process did not stop on SIGTERM")
	}
}

// ctlJSON runs replctl -o json to completion and decodes its one object.
func ctlJSON(t *testing.T, addr string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(replctlBin, append([]string{"--address", addr, "-o", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "REPLCTL_ADDRESS=", "REPLCTL_TOKEN=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("replctl %v: %v\n%s", args, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]), &m); err != nil {
		t.Fatalf("replctl %v: %v\n%s", args, err, out)
	}
	if j, ok := m["job"].(map[string]any); ok {
		return j
	}
	return m
}

// Between two polls of the daemon, with no Watch event, the live view of
// a real daemon shows a COPYING job's percent and ETA move: ecsemu copies
// slowly, the daemon's polls are an hour apart, and the screen changes
// while the job's revision stays the same.
func TestPTYLiveProgressBetweenPolls(t *testing.T) {
	daemon, emu := daemonBins(t)
	dir, err := os.MkdirTemp("", "rl") // short: a unix socket path has a limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	// 20 GiB at 50 MiB/s, 4 times faster: about 100 s, 1% a second.
	e := startBG(t, emu, daemonCreds, "--listen", "127.0.0.1:0", "--time-scale", "4", "--startup-delay", "-1s", "--seed", "7")
	e.out.waitWithin(t, 60*time.Second, "ecsemu listening", func(s string) bool { return strings.Contains(s, "listening on http://") })
	endpoint := regexp.MustCompile(`http://\S+`).FindString(e.out.String())
	config := filepath.Join(dir, "replicatord.yaml")
	cfg := fmt.Sprintf("version: 1\ndaemon:\n  data_dir: data\ncloud:\n  provider: aliyun\n  endpoint: %s\nscheduler:\n  poll_min: 1h\n  poll_max: 2h\n", endpoint)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "unix://" + filepath.Join(dir, "data", "replicatord.sock")
	startDaemon := func() *bgProc {
		d := startBG(t, daemon, daemonCreds, "--config", config)
		d.out.waitWithin(t, 60*time.Second, "replicatord ready", func(s string) bool { return strings.Contains(s, "replicatord ready") })
		return d
	}

	// ECS accepts the copy; the daemon's next poll would be an hour away.
	d := startDaemon()
	id, _ := ctlJSON(t, addr, "copy", "m-bp1f5c9ka0z2wn3hj6ys", "--from", "cn-hangzhou", "--to", "cn-shanghai", "--detach")["id"].(string)
	if id == "" {
		t.Fatal("copy returned no job id")
	}
	// A restarted daemon polls its copies at once, and then not for an hour.
	d.stop(t)
	startDaemon()
	var before map[string]any
	deadline := time.Now().Add(60 * time.Second)
	for {
		before = ctlJSON(t, addr, "get", id)
		if before["state"] == "JOB_STATE_COPYING" && before["observedRemaining"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not COPYING with a time left within 60s: %v", before)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition, with a deadline
	}

	r := startPTY(t, "--address", addr, "watch")
	line := regexp.MustCompile(`cn-shanghai\s+COPYING\s+(~?\s*\d+%)\s.*(ETA \S+)`)
	percents, etas := map[string]bool{}, map[string]bool{}
	r.out.waitWithin(t, 60*time.Second, "the percent and the ETA to change twice", func(string) bool {
		m := line.FindStringSubmatch(r.screen(t))
		if m != nil {
			percents[m[1]], etas[m[2]] = true, true
		}
		return len(percents) >= 3 && len(etas) >= 3
	})
	after := ctlJSON(t, addr, "get", id)
	if after["revision"] != before["revision"] || after["observedProgressPercent"] != before["observedProgressPercent"] {
		t.Fatalf("the job changed while the view moved (a poll came): revision %v → %v, ECS progress %v → %v",
			before["revision"], after["revision"], before["observedProgressPercent"], after["observedProgressPercent"])
	}
	scr := r.screen(t)
	if !strings.Contains(scr, "~") {
		t.Errorf("the moving percent is not marked as estimated:\n%s", scr)
	}
	t.Logf("percents %v, ETAs %v, with the job at revision %v; last screen:\n%s", keys(percents), keys(etas), after["revision"], scr)
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t); code != 0 {
		t.Errorf("watch exit %d after Ctrl-C", code)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
