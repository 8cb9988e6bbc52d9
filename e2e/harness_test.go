package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/cloud/aliyun"
	"github.com/replicatord/replicatord/internal/job"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replicatord-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../cmd/replicatord", "../cmd/replctl", "../cmd/ecsemu")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	accessKeyID     = "LTAIe2etestkey0001"
	accessKeySecret = "e2e-secret-not-for-logs-7f3a"
	source          = "cn-hangzhou"
	// Demo images of ecsemu.
	imgAlinux  = "m-bp1f5c9ka0z2wn3hj6ys" // 20 GiB
	imgUbuntu  = "m-bp1g7004ksh0oeuco4r2" // 40 GiB
	imgWindows = "m-bp17h2k9s0d4f6g8j1lz" // 120 GiB
)

// proc is a running binary whose output lines are collected.
type proc struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	grew  chan struct{}
	done  chan struct{}
	err   error
}

func start(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, grew: make(chan struct{}, 1), done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Env = append(os.Environ(), env...)
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.grew <- struct{}{}:
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits for an output line containing s and returns it.
func (p *proc) waitLine(s string, timeout time.Duration) string {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("a line with %q", s), timeout, func(l string) bool { return strings.Contains(l, s) })
}

// waitFor waits for an output line for which match is true.
func (p *proc) waitFor(what string, timeout time.Duration, match func(string) bool) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for seen := 0; ; {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if match(p.lines[seen]) {
				l := p.lines[seen]
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.grew:
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before printing %s", p.name, p.err, what)
		case <-deadline:
			p.t.Fatalf("%s did not print %s within %s", p.name, what, timeout)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %s", p.name, timeout)
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stop() int {
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(30 * time.Second)
}

// env is one test's world: an emulator process and a daemon's files.
type env struct {
	t        testing.TB
	emu      *proc
	endpoint string
	dir      string
	config   string
	socket   string
	daemon   *proc
	cloud    *aliyun.Provider
}

func credsEnv() []string {
	return []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=" + accessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + accessKeySecret}
}

// newEnv starts ecsemu (extra flags appended) and writes a daemon config
// pointing at it.
func newEnv(t testing.TB, emuFlags ...string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	args := append([]string{"--listen", "127.0.0.1:0", "--time-scale", "100", "--seed", "7"}, emuFlags...)
	e.emu = start(t, "ecsemu", credsEnv(), args...)
	line := e.emu.waitLine("listening on http://", 30*time.Second)
	e.endpoint = line[strings.Index(line, "http://"):]
	e.endpoint = strings.Fields(e.endpoint)[0]
	e.socket = filepath.Join(e.dir, "data", "replicatord.sock")
	e.config = filepath.Join(e.dir, "replicatord.yaml")
	e.writeConfig("")
	var err error
	e.cloud, err = aliyun.New(aliyun.Config{Endpoint: e.endpoint, Insecure: true,
		Credentials: aliyun.Credentials{AccessKeyID: accessKeyID, AccessKeySecret: accessKeySecret}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cloud.Close)
	return e
}

func (e *env) writeConfig(extra string) {
	e.t.Helper()
	cfg := fmt.Sprintf(`version: 1
daemon:
  data_dir: data
cloud:
  provider: aliyun
  endpoint: %s
scheduler:
  poll_min: 200ms
  poll_max: 5s
%s`, e.endpoint, extra)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// startDaemon runs replicatord and waits until it serves.
func (e *env) startDaemon(args ...string) *proc {
	e.t.Helper()
	e.daemon = start(e.t, "replicatord", credsEnv(), append([]string{"--config", e.config}, args...)...)
	e.daemon.waitLine("replicatord ready", 30*time.Second)
	return e.daemon
}

// ctl runs replctl to completion and returns its output and exit code.
func (e *env) ctl(args ...string) (string, int) {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "replctl"), args...)
	cmd.Env = append(os.Environ(), "REPLCTL_ADDRESS=unix://"+e.socket)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("replctl %v: %v", args, err)
	}
	return string(out), code
}

// ctlStart runs replctl in the background (copy, watch).
func (e *env) ctlStart(args ...string) *proc {
	return start(e.t, "replctl", []string{"REPLCTL_ADDRESS=unix://" + e.socket}, args...)
}

// jsonJob is the part of replctl's protojson output the tests read.
type jsonJob struct {
	ID                 string `json:"id"`
	State              string `json:"state"`
	DestinationRegion  string `json:"destinationRegion"`
	DestinationImageID string `json:"destinationImageId"`
	SourceImageID      string `json:"sourceImageId"`
	Adopted            bool   `json:"adopted"`
	PruneReason        string `json:"pruneReason"`
	NextAttemptTime    string `json:"nextAttemptTime"`
	Error              *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// jobsIn parses protojson lines ({"job": {...}}) into the latest state per job.
func jobsIn(t testing.TB, out string) map[string]jsonJob {
	t.Helper()
	jobs := map[string]jsonJob{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "{") {
			continue
		}
		// Copy and Watch print {"job": {...}}; jobs and get print the job.
		var m struct {
			Job *jsonJob `json:"job"`
			jsonJob
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		switch {
		case m.Job != nil:
			jobs[m.Job.ID] = *m.Job
		case m.ID != "":
			jobs[m.ID] = m.jsonJob
		}
	}
	return jobs
}

// copiesIn lists replicatord's copies (lineage-tagged) of src in region,
// in every status, asked through the SDK.
func (e *env) copiesIn(region, src string) []cloud.Image {
	e.t.Helper()
	imgs, err := e.cloud.DescribeImages(context.Background(), cloud.ImageQuery{Region: region, Statuses: cloud.AllStatuses})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []cloud.Image
	for _, im := range imgs {
		if im.Tags[job.TagSourceImage] == src {
			out = append(out, im)
		}
	}
	return out
}

// waitState follows `replctl watch --job ID -o json` until the job is in state.
func (e *env) waitState(id, state string, timeout time.Duration) {
	e.t.Helper()
	w := e.ctlStart("watch", "--job", id, "-o", "json")
	w.waitFor(id+" in "+state, timeout, func(l string) bool {
		j, ok := jobsIn(e.t, l)[id]
		return ok && j.State == state
	})
	w.cmd.Process.Kill()
}
