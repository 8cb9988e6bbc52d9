// Package etcdtest runs a real etcd member in the test's process (etcd's
// own server, go.etcd.io/etcd/server/v3/embed) for the tests of the etcd
// store and of what runs on it. A member can be stopped and started again
// on the same ports and data, to test what a client sees while etcd cannot
// be reached. Only tests import it: the daemon talks to etcd over the
// network and never links etcd's server.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Member is one etcd member serving on 127.0.0.1.
type Member struct {
	dir          string
	maxTxnOps    uint
	client, peer url.URL
	e            *embed.Etcd
}

// Start starts a member on free loopback ports with its data in dir,
// refusing transactions of more than maxTxnOps operations (etcd's default
// is 128). It returns once the member serves.
func Start(dir string, maxTxnOps uint) (*Member, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var urls [2]url.URL
	for i := range urls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		urls[i] = url.URL{Scheme: "http", Host: l.Addr().String()}
		l.Close()
	}
	m := &Member{dir: dir, maxTxnOps: maxTxnOps, client: urls[0], peer: urls[1]}
	return m, m.Restart()
}

// Endpoint is the member's client URL.
func (m *Member) Endpoint() string { return m.client.String() }

// Stop stops the member; its data stays for Restart. Stopping a stopped
// member does nothing.
func (m *Member) Stop() {
	if m.e != nil {
		m.e.Close()
		m.e = nil
	}
}

// Restart starts a stopped member again, on the same ports and data.
func (m *Member) Restart() error {
	if m.e != nil {
		return fmt.Errorf("etcd member in %s is running", m.dir)
	}
	cfg := embed.NewConfig()
	cfg.Dir = m.dir
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(m.dir, "etcd.log")}
	cfg.MaxTxnOps = m.maxTxnOps
	cfg.MaxRequestBytes = 16 << 20
	cfg.UnsafeNoFsync = true // test data in a temp dir; durability is etcd's own
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{m.client}, []url.URL{m.client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{m.peer}, []url.URL{m.peer}
	cfg.InitialCluster = cfg.Name + "=" + m.peer.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("embedded etcd in %s: %w", m.dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		m.e = e
		return nil
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("embedded etcd in %s: not ready after 60 s", m.dir)
	}
}
