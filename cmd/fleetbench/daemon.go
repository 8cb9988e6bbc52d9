package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildDaemon builds replicatord into dir and returns the binary's path.
func buildDaemon(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "replicatord")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/replicatord/replicatord/cmd/replicatord")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build replicatord (run fleetbench from the module, or pass --daemon): %v\n%s", err, out)
	}
	return bin, nil
}

// daemonConfig is the scheduler part of the generated config file.
type daemonConfig struct {
	Slots   int
	APIRate float64
	PollMin time.Duration
	PollMax time.Duration
	// LookaheadTime and DetectionLag, scaled like the poll bounds.
	LookaheadTime time.Duration
	DetectionLag  time.Duration
	CopyConflict  bool
	Lookahead     int // <0: the daemon's default
	// Etcd: the client URLs of the etcd cluster to keep the jobs in
	// (store.backend etcd, plain HTTP on loopback); empty: bbolt in the
	// data directory.
	Etcd []string
}

// writeConfig writes the daemon's config file into dir: state in dir/data
// (or in etcd, with c.Etcd; the socket stays in dir/data), the cloud at the
// emulator, the scheduler scaled with time.
func writeConfig(dir, endpoint string, c daemonConfig) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\ndaemon:\n  data_dir: %s\n  log_level: info\n", filepath.Join(dir, "data"))
	fmt.Fprintf(&b, "cloud:\n  provider: aliyun\n  endpoint: %s\n", endpoint)
	fmt.Fprintf(&b, "scheduler:\n  copy_slots_per_region: %d\n  api_rate_per_second: %g\n  poll_min: %s\n  poll_max: %s\n  copy_conflict: %t\n",
		c.Slots, c.APIRate, c.PollMin, c.PollMax, c.CopyConflict)
	fmt.Fprintf(&b, "  lookahead_time: %s\n  detection_lag: %s\n", c.LookaheadTime, c.DetectionLag)
	if c.Lookahead >= 0 {
		fmt.Fprintf(&b, "  lookahead: %d\n", c.Lookahead)
	}
	if len(c.Etcd) > 0 {
		// insecure: the members listen on loopback only (etcdCluster).
		eps := make([]string, len(c.Etcd))
		for i, ep := range c.Etcd {
			eps[i] = strconv.Quote(ep)
		}
		fmt.Fprintf(&b, "store:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    insecure: true\n", strings.Join(eps, ", "))
	}
	path := filepath.Join(dir, "replicatord.yaml")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// daemonProc is a running replicatord.
type daemonProc struct {
	cmd    *exec.Cmd
	Socket string
	log    *os.File
	done   chan struct{}
	err    error
}

// startDaemon runs bin with the config and waits until it serves gRPC.
// member, when not empty, is the replica's REPLICATORD_MEMBER_ID (etcd);
// dataDir, when not empty, overrides the config's data_dir (a second
// replica on the same config file: the same config hash).
func startDaemon(bin, config, dir, keyID, secret, member, dataDir string) (*daemonProc, error) {
	logf, err := os.Create(filepath.Join(dir, "replicatord.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"--config", config}
	socket := filepath.Join(dir, "data", "replicatord.sock")
	if dataDir != "" {
		args = append(args, "--data-dir", dataDir)
		socket = filepath.Join(dataDir, "replicatord.sock")
	}
	cmd := exec.Command(bin, args...)
	// The daemon's own environment, minus any real cloud credentials and
	// etcd identity, plus the emulator's key.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ALIBABA_CLOUD_") && !strings.HasPrefix(kv, "REPLICATORD_ETCD_") && !strings.HasPrefix(kv, "REPLICATORD_MEMBER_ID=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "ALIBABA_CLOUD_ACCESS_KEY_ID="+keyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+secret)
	if member != "" {
		cmd.Env = append(cmd.Env, "REPLICATORD_MEMBER_ID="+member)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &daemonProc{cmd: cmd, Socket: socket, log: logf, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if !signalled && strings.HasPrefix(sc.Text(), "replicatord ready") {
				signalled = true
				close(ready)
			}
		}
		d.err = cmd.Wait()
		close(d.done)
	}()
	select {
	case <-ready:
		return d, nil
	case <-d.done:
		logf.Close()
		return nil, fmt.Errorf("replicatord exited before it was ready (%v); see %s", d.err, logf.Name())
	case <-time.After(30 * time.Second):
		d.kill()
		return nil, fmt.Errorf("replicatord not ready after 30s; see %s", logf.Name())
	}
}

func (d *daemonProc) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
	d.log.Close()
}

// usage is what the daemon process used over its life.
type usage struct {
	CPU    time.Duration // user + system
	MaxRSS int64         // bytes
}

// stop ends the daemon with SIGTERM and returns its resource usage.
func (d *daemonProc) stop() (usage, error) {
	defer d.log.Close()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return usage{}, errors.New("replicatord did not stop within 30s of SIGTERM; killed")
	}
	ru, ok := d.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return usage{}, errors.New("no resource usage for replicatord on this platform")
	}
	u := usage{
		CPU:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		MaxRSS: ru.Maxrss * 1024, // KiB on Linux
	}
	if !d.cmd.ProcessState.Success() {
		return u, fmt.Errorf("replicatord exited with %v; see %s", d.cmd.ProcessState, d.log.Name())
	}
	return u, nil
}
