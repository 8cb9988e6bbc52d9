package etcdstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/state/etcdstore"
	"github.com/replicatord/replicatord/internal/state/etcdstore/etcdtest"
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
	e, err := etcdtest.Start(dir, 20000) // ListLimitsAndTokens creates 1100 jobs in one Create
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Stop()
	cli, err = clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd client:", err)
		return 1
	}
	defer cli.Close()
	return m.Run()
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
