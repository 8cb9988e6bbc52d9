// Package etcdcluster runs a cluster of real etcd server processes on
// loopback: the end-to-end tests' etcd (members killed and restarted on
// their own data directories, as an operator's supervisor would) and
// fleetbench's (`--etcd`). etcd takes its listen URLs as flags, so each
// member gets ports that were free a moment before it starts.
//
// Start returns once a linearizable read through every endpoint succeeds;
// a member that exits before then fails it at once, with its log's tail,
// so a wrong binary or a port taken meanwhile reads as what it is.
package etcdcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Options describe a cluster.
type Options struct {
	// Binary is the etcd server (make tools builds tools/bin/etcd).
	Binary string
	// Members is the number of members (1 or more).
	Members int
	// Dir holds each member's data directory and log.
	Dir string
	// Fsync keeps etcd's fsync, as production does (benchmarks); false
	// passes --unsafe-no-fsync (tests: the data is thrown away).
	Fsync bool
	// Token is the --initial-cluster-token.
	Token string
	// ClientTLS, when set, serves the client URLs on https with the
	// members' Args giving etcd its certificate (--cert-file, --key-file,
	// ...); it is the TLS config of the readiness check.
	ClientTLS *tls.Config
	// Args are more flags for every member.
	Args []string
	// ReadyTimeout bounds the wait for the cluster's first linearizable
	// read (an election, on a loaded machine): 60 s when zero.
	ReadyTimeout time.Duration
}

// Cluster is a running cluster.
type Cluster struct {
	o       Options
	initial string // --initial-cluster
	members []*member
}

type member struct {
	name, dir, client, peer string
	logPath                 string
	cmd                     *exec.Cmd
	log                     *os.File
	done                    chan struct{}
	err                     error
}

// Start starts the members and returns once the cluster answers a
// linearizable read. On error nothing is left running.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Members < 1 {
		return nil, fmt.Errorf("etcd cluster: %d members (want 1 or more)", o.Members)
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	scheme := "http"
	if o.ClientTLS != nil {
		scheme = "https"
	}
	c := &Cluster{o: o}
	var initial []string
	for i := 0; i < o.Members; i++ {
		client, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		peer, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("e%d", i)
		c.members = append(c.members, &member{name: name, dir: filepath.Join(o.Dir, name),
			logPath: filepath.Join(o.Dir, name+".log"), client: scheme + "://" + client, peer: "http://" + peer})
		initial = append(initial, name+"=http://"+peer)
	}
	c.initial = strings.Join(initial, ",")
	for _, m := range c.members {
		if err := c.start(m, "new"); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.waitReady(ctx, c.Endpoints()); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.client
	}
	return eps
}

// Kill SIGKILLs member i (nothing if it is not running); its data stays.
func (c *Cluster) Kill(i int) {
	m := c.members[i]
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	m.log.Close()
	m.cmd = nil
}

// Restart starts member i again on its data directory and returns once
// it answers.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	m := c.members[i]
	if m.cmd != nil {
		return fmt.Errorf("etcd member %s is running", m.name)
	}
	if err := c.start(m, "existing"); err != nil {
		return err
	}
	return c.waitReady(ctx, []string{m.client})
}

// Stop kills every member and removes their data directories; the logs
// stay in Dir.
func (c *Cluster) Stop() {
	for i, m := range c.members {
		c.Kill(i)
		_ = os.RemoveAll(m.dir)
	}
}

// Exited reports a member that stopped without Kill, with its log's tail.
func (c *Cluster) Exited() error {
	for _, m := range c.members {
		if m.cmd == nil {
			continue
		}
		select {
		case <-m.done:
			return fmt.Errorf("etcd member %s (%s) exited: %v; %s:\n%s", m.name, c.o.Binary, m.err, m.logPath, tail(m.logPath, 2000))
		default:
		}
	}
	return nil
}

// Logs is every member's log, for a failing test's output.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, m := range c.members {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", m.name, m.logPath, tail(m.logPath, 20000))
	}
	return b.String()
}

func (c *Cluster) start(m *member, state string) error {
	log, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	args := []string{"--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", c.initial, "--initial-cluster-state", state,
		"--initial-cluster-token", c.o.Token, "--log-level", "error"}
	if !c.o.Fsync {
		args = append(args, "--unsafe-no-fsync")
	}
	cmd := exec.Command(c.o.Binary, append(args, c.o.Args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("etcd (%s): start member %s: %w", c.o.Binary, m.name, err)
	}
	m.cmd, m.log, m.done, m.err = cmd, log, make(chan struct{}), nil
	go func(done chan struct{}) { m.err = cmd.Wait(); close(done) }(m.done)
	return nil
}

// waitReady waits until a linearizable read through endpoints succeeds;
// a member that exits fails the wait at once.
func (c *Cluster) waitReady(ctx context.Context, endpoints []string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: c.o.ClientTLS, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()
	deadline := time.Now().Add(c.o.ReadyTimeout)
	for {
		if err := c.Exited(); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Get(rctx, "etcdcluster-health") // linearizable by default
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("etcd cluster of %d members (%s) does not answer a linearizable read through %s after %s: %v; logs in %s",
				len(c.members), c.o.Binary, strings.Join(endpoints, ","), c.o.ReadyTimeout, err, c.o.Dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail is the last n bytes of a file, trimmed.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// freeLoopbackPort returns a loopback address whose port was free a
// moment ago.
func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// TB is the part of testing.TB that BinaryFor needs (so that fleetbench,
// which imports this package, does not link package testing).
type TB interface {
	Helper()
	Fatal(args ...any)
	Skip(args ...any)
}

// BinaryFor finds etcd's server for a test: $ETCD, else tools/bin/etcd
// under repoRoot (make tools builds it). Without either the test is
// skipped, except in CI (CI=true), where it must run and fails.
func BinaryFor(t TB, repoRoot string) string {
	t.Helper()
	if p := os.Getenv("ETCD"); p != "" {
		return p
	}
	if p, err := filepath.Abs(filepath.Join(repoRoot, "tools", "bin", "etcd")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("etcd not found ($ETCD unset, no tools/bin/etcd): run make tools")
	}
	t.Skip("etcd not found ($ETCD unset, no tools/bin/etcd): make tools builds it")
	return ""
}
