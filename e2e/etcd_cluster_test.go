package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdCluster is a cluster of real etcd server processes on loopback, for
// the HA chaos test and benchmarks: members can be killed and restarted
// on their own data directories, as an operator's supervisor would.
type etcdCluster struct {
	t       testing.TB
	bin     string
	fsync   bool
	members []*etcdMember
	initial string // --initial-cluster
}

type etcdMember struct {
	name, dir, client, peer string
	cmd                     *exec.Cmd
	done                    chan struct{}
	log                     *os.File
}

// startEtcdCluster starts n members and waits until the cluster answers
// a linearizable read. fsync false passes --unsafe-no-fsync (tests);
// benchmarks keep etcd's fsync, as production does.
func startEtcdCluster(t testing.TB, n int, fsync bool) *etcdCluster {
	t.Helper()
	c := &etcdCluster{t: t, bin: etcdBinary(t), fsync: fsync}
	root := t.TempDir()
	var initial []string
	for i := 0; i < n; i++ {
		m := &etcdMember{name: fmt.Sprintf("e%d", i), dir: filepath.Join(root, fmt.Sprintf("e%d", i)),
			client: "http://" + freePort(t), peer: "http://" + freePort(t)}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	c.initial = strings.Join(initial, ",")
	for i := range c.members {
		c.startMember(i, "new")
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.Kill(i)
		}
	})
	c.waitHealthy(c.Endpoints(), 60*time.Second)
	return c
}

// Endpoints are the members' client URLs.
func (c *etcdCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.client)
	}
	return eps
}

func (c *etcdCluster) startMember(i int, state string) {
	c.t.Helper()
	m := c.members[i]
	args := []string{"--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", c.initial, "--initial-cluster-state", state,
		"--initial-cluster-token", "replicatord-e2e", "--log-level", "error"}
	if !c.fsync {
		args = append(args, "--unsafe-no-fsync")
	}
	m.cmd = exec.Command(c.bin, args...)
	log, err := os.OpenFile(filepath.Join(filepath.Dir(m.dir), m.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	m.log = log
	m.cmd.Stdout, m.cmd.Stderr = log, log
	if err := m.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(m.cmd, m.done)
}

// Kill SIGKILLs member i (a no-op if it is not running).
func (c *etcdCluster) Kill(i int) {
	m := c.members[i]
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.done
	m.log.Close()
	m.cmd = nil
}

// Restart starts member i again on its data directory and waits until
// it answers.
func (c *etcdCluster) Restart(i int) {
	c.t.Helper()
	c.startMember(i, "existing")
	c.waitHealthy([]string{c.members[i].client}, 60*time.Second)
}

// waitHealthy waits until a linearizable read through endpoints succeeds.
func (c *etcdCluster) waitHealthy(endpoints []string, timeout time.Duration) {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	defer cli.Close()
	waitEtcdAnswers(c.t, cli, timeout, func() string {
		var logs strings.Builder
		for _, m := range c.members {
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(m.dir), m.name+".log"))
			fmt.Fprintf(&logs, "--- %s\n%s\n", m.name, b)
		}
		return logs.String()
	})
}

// waitEtcdAnswers waits until a linearizable read through cli succeeds;
// after timeout it fails the test with the last error and logs().
func waitEtcdAnswers(t testing.TB, cli *clientv3.Client, timeout time.Duration, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd does not answer after %s: %v\n%s", timeout, err, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
