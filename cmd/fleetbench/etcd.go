package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdCluster is a cluster of real etcd server processes on loopback for
// one run of replicatord on etcd: every member has its own data directory
// under the run's directory and keeps etcd's fsync, as production does
// (the benchmark measures what the etcd backend costs, so no
// --unsafe-no-fsync). This is fleetbench's own launcher: a command cannot
// import e2e's test code.
type etcdCluster struct {
	bin     string
	root    string
	members []*etcdMember
}

type etcdMember struct {
	name, dir, client, peer string
	cmd                     *exec.Cmd
	log                     *os.File
	done                    chan struct{}
	err                     error
}

// etcdReadyTimeout bounds the wait for a fresh cluster's first
// linearizable read (an election, on a loaded machine).
const etcdReadyTimeout = 60 * time.Second

// checkEtcdBinary is the --etcd flag's check: an executable regular file.
func checkEtcdBinary(path string) error {
	fi, err := os.Stat(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is named once, below
	}
	switch {
	case err != nil:
		return fmt.Errorf("--etcd %s: %w (make tools builds tools/bin/etcd)", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("--etcd %s: not a file (want an etcd server binary; make tools builds tools/bin/etcd)", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("--etcd %s: not executable (want an etcd server binary; make tools builds tools/bin/etcd)", path)
	}
	return nil
}

// startEtcdCluster starts n members of bin under root and returns once
// the cluster answers a linearizable read. On error nothing is left
// running.
func startEtcdCluster(ctx context.Context, bin string, n int, root string) (*etcdCluster, error) {
	c := &etcdCluster{bin: bin, root: root}
	var initial []string
	for i := 0; i < n; i++ {
		client, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		peer, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		m := &etcdMember{name: fmt.Sprintf("e%d", i), dir: filepath.Join(root, fmt.Sprintf("e%d", i)),
			client: "http://" + client, peer: "http://" + peer}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	for _, m := range c.members {
		if err := c.start(m, strings.Join(initial, ",")); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitReady(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *etcdCluster) start(m *etcdMember, initial string) error {
	log, err := os.Create(filepath.Join(c.root, m.name+".log"))
	if err != nil {
		return err
	}
	m.log = log
	m.cmd = exec.Command(c.bin, "--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", initial, "--initial-cluster-state", "new",
		"--initial-cluster-token", "fleetbench", "--log-level", "error")
	m.cmd.Stdout, m.cmd.Stderr = log, log
	if err := m.cmd.Start(); err != nil {
		log.Close()
		m.cmd = nil
		return fmt.Errorf("etcd (--etcd %s): start member %s: %w", c.bin, m.name, err)
	}
	m.done = make(chan struct{})
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	return nil
}

// waitReady waits until a linearizable read through every endpoint
// succeeds; a member that exits fails the wait at once, naming the binary
// and its log.
func (c *etcdCluster) waitReady(ctx context.Context) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()
	deadline := time.Now().Add(etcdReadyTimeout)
	for {
		if err := c.exited(); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Get(rctx, "fleetbench-health") // linearizable by default
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("etcd cluster of %d members (--etcd %s) does not answer a linearizable read after %s: %v; logs in %s",
				len(c.members), c.bin, etcdReadyTimeout, err, c.root)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exited reports a member that is no longer running, with its log's tail.
func (c *etcdCluster) exited() error {
	for _, m := range c.members {
		select {
		case <-m.done:
			tail, _ := os.ReadFile(m.log.Name())
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return fmt.Errorf("etcd member %s (--etcd %s) exited: %v; %s:\n%s", m.name, c.bin, m.err, m.log.Name(), strings.TrimSpace(string(tail)))
		default:
		}
	}
	return nil
}

// Endpoints are the members' client URLs.
func (c *etcdCluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.client
	}
	return eps
}

// stop kills every member and removes the data directories (the logs stay
// in root for --keep).
func (c *etcdCluster) stop() {
	for _, m := range c.members {
		if m.cmd == nil {
			continue
		}
		_ = m.cmd.Process.Kill()
		<-m.done
		m.log.Close()
		m.cmd = nil
		_ = os.RemoveAll(m.dir)
	}
}

// freeLoopbackPort returns a loopback address whose port was free a
// moment ago (etcd takes its listen URLs as flags, not as listeners).
func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// leaderTimeout bounds the wait for the first replica to lead.
const leaderTimeout = 60 * time.Second

// startReplicas waits until leader (replica r1) leads and, with
// --replicas 2, starts replica r2 on the same config file with its own
// data directory and waits until it serves and sees r1 leading with both
// members listed. It returns the follower, or nil.
func startReplicas(ctx context.Context, o *options, leader *daemonProc, bin, config, dir string, emu *emulator) (*daemonProc, error) {
	if err := waitLeader(ctx, leader.Socket, "r1", 1); err != nil {
		return nil, fmt.Errorf("%w (daemon log: %s)", err, leader.log.Name())
	}
	if o.replicas < 2 {
		return nil, nil
	}
	fdir := filepath.Join(dir, "r2")
	if err := os.MkdirAll(fdir, 0o700); err != nil {
		return nil, err
	}
	f, err := startDaemon(bin, config, fdir, emu.KeyID, emu.Secret, "r2", filepath.Join(fdir, "data"))
	if err != nil {
		return nil, fmt.Errorf("follower: %w", err)
	}
	if err := waitLeader(ctx, f.Socket, "r1", 2); err != nil {
		f.kill()
		return nil, fmt.Errorf("follower: %w (its log: %s)", err, f.log.Name())
	}
	return f, nil
}

// waitLeader polls GetStatus on socket until it reports leader as the
// leader and at least members members.
func waitLeader(ctx context.Context, socket, leader string, members int) error {
	conn, err := transport.Dial(transport.ClientConfig{Address: "unix://" + socket})
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewReplicatorServiceClient(conn)
	deadline := time.Now().Add(leaderTimeout)
	var last string
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := client.GetStatus(sctx, &pb.GetStatusRequest{})
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case st.GetLeader() == leader && len(st.GetMembers()) >= members:
			return nil
		default:
			last = fmt.Sprintf("leader %q, %d members %s", st.GetLeader(), len(st.GetMembers()), st.GetMembersError())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %s does not lead after %s (status: %s)", leader, leaderTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
