package etcdstore_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/state/etcdstore"
	"github.com/replicatord/replicatord/internal/state/statetest"
)

// cli is a client of the one embedded etcd member every test of the
// package shares (started in TestMain: a start costs about a second).
var cli *clientv3.Client

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "etcdstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	e, err := startEtcd(dir, 20000) // ListLimitsAndTokens creates 1100 jobs in one Create
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded etcd:", err)
		return 1
	}
	defer e.Close()
	cli, err = clientv3.New(clientv3.Config{Endpoints: []string{e.Clients[0].Addr().String()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd client:", err)
		return 1
	}
	defer cli.Close()
	return m.Run()
}

// startEtcd starts one etcd member on free 127.0.0.1 ports with its data
// in dir, refusing transactions of more than maxTxnOps operations.
func startEtcd(dir string, maxTxnOps uint) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	cfg.MaxTxnOps = maxTxnOps
	cfg.MaxRequestBytes = 16 << 20
	cfg.UnsafeNoFsync = true // test data in a temp dir; durability is etcd's own
	urls := make([]url.URL, 2)
	for i := range urls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		urls[i] = url.URL{Scheme: "http", Host: l.Addr().String()}
		l.Close()
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = urls[:1], urls[:1]
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = urls[1:], urls[1:]
	cfg.InitialCluster = cfg.Name + "=" + urls[1].String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("not ready after 60 s")
	}
}

var stores atomic.Int64

// TestStoreSuite runs the Store contract against etcd, each test on a
// prefix of its own in the shared member.
func TestStoreSuite(t *testing.T) {
	statetest.Run(t, statetest.Backend{
		Open: func(t *testing.T, clk clock.Clock) state.Store {
			prefix := fmt.Sprintf("/test/%d-%s/", stores.Add(1), strings.ReplaceAll(t.Name(), "/", "_"))
			return open(t, prefix, clk)
		},
		Reopen: func(t *testing.T, s state.Store, clk clock.Clock) state.Store {
			if err := s.Close(); err != nil {
				t.Fatalf("Close before reopen: %v", err)
			}
			return open(t, s.(*etcdstore.Store).Prefix(), clk)
		},
	})
}

func open(t *testing.T, prefix string, clk clock.Clock) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(context.Background(), cli, etcdstore.Options{Prefix: prefix, Clock: clk})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
