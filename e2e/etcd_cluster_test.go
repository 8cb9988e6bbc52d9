package e2e

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/replicatord/replicatord/internal/etcdcluster"
)

// etcdCluster is a cluster of real etcd server processes on loopback
// (internal/etcdcluster), for the HA chaos test and benchmarks: members
// can be killed and restarted on their own data directories, as an
// operator's supervisor would. A failure to start fails the test.
type etcdCluster struct {
	t testing.TB
	*etcdcluster.Cluster
}

// startEtcdCluster starts n members and waits until the cluster answers
// a linearizable read. fsync false passes --unsafe-no-fsync (tests);
// benchmarks keep etcd's fsync, as production does.
func startEtcdCluster(t testing.TB, n int, fsync bool) *etcdCluster {
	t.Helper()
	c, err := etcdcluster.Start(context.Background(), etcdcluster.Options{
		Binary: etcdBinary(t), Members: n, Dir: t.TempDir(), Fsync: fsync, Token: "replicatord-e2e"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return &etcdCluster{t: t, Cluster: c}
}

// Restart starts member i again on its data directory and waits until
// it answers.
func (c *etcdCluster) Restart(i int) {
	c.t.Helper()
	if err := c.Cluster.Restart(context.Background(), i); err != nil {
		c.t.Fatalf("%v\n%s", err, c.Logs())
	}
}

// startEtcd runs a one-member etcd server and returns its client URL
// once it answers.
func startEtcd(t *testing.T) string {
	t.Helper()
	return startEtcdWith(t, nil)
}

// startEtcdWith runs a one-member etcd with the extra flags, its client
// URL on https when tc (the client's TLS config) is set, and returns that
// URL once it answers.
func startEtcdWith(t *testing.T, tc *tls.Config, extra ...string) string {
	t.Helper()
	c, err := etcdcluster.Start(context.Background(), etcdcluster.Options{
		Binary: etcdBinary(t), Members: 1, Dir: t.TempDir(), Token: "replicatord-e2e", ClientTLS: tc, Args: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c.Endpoints()[0]
}

// etcdBinary finds etcd's server for the HA tests (etcdcluster.BinaryFor:
// $ETCD, else tools/bin/etcd; skipped without it, except in CI).
func etcdBinary(t testing.TB) string {
	t.Helper()
	return etcdcluster.BinaryFor(t, "..")
}
