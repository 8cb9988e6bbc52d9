package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/etcdcluster"
	"github.com/replicatord/replicatord/internal/transport"
)

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

// startEtcdCluster starts a cluster of n real etcd server processes on
// loopback under root (internal/etcdcluster) for one run of replicatord on
// etcd, and returns once it answers a linearizable read. Every member
// keeps etcd's fsync, as production does: the benchmark measures what the
// etcd backend costs, so no --unsafe-no-fsync. Stop removes the data
// directories; the logs stay in root for --keep.
func startEtcdCluster(ctx context.Context, bin string, n int, root string) (*etcdcluster.Cluster, error) {
	c, err := etcdcluster.Start(ctx, etcdcluster.Options{Binary: bin, Members: n, Dir: root, Fsync: true, Token: "fleetbench"})
	if err != nil {
		return nil, fmt.Errorf("--etcd %s: %w", bin, err)
	}
	return c, nil
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
