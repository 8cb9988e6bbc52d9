package etcdcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func client(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// A killed member leaves a quorum that still answers; restarted on its
// data, it answers alone with what was written while it was down.
func TestKillAndRestartMember(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := Start(ctx, Options{Binary: BinaryFor(t, filepath.Join("..", "..")), Members: 3, Dir: dir, Token: "etcdcluster-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	eps := c.Endpoints()
	if len(eps) != 3 {
		t.Fatalf("endpoints %v, want 3", eps)
	}
	c.Kill(0)
	// If e0 led, the other two elect a leader first: etcd times the
	// request out meanwhile ("possibly due to previous leader failure").
	rest := client(t, eps[1:])
	for deadline := time.Now().Add(time.Minute); ; {
		_, err := rest.Put(ctx, "k", "written while e0 was down")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two of three members: %v\n%s", err, c.Logs())
		}
	}
	if err := c.Exited(); err != nil {
		t.Fatalf("Exited after Kill: %v (a killed member is not one that exited)", err)
	}
	if err := c.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, 0); err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("Restart of a running member: %v, want an error saying it runs", err)
	}
	resp, err := client(t, eps[:1]).Get(ctx, "k") // linearizable: e0 has caught up
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "written while e0 was down" {
		t.Fatalf("Get through the restarted member: %v %v", resp, err)
	}
	c.Stop()
	for _, name := range []string{"e0", "e1", "e2"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("data directory %s after Stop: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, name+".log")); err != nil {
			t.Errorf("log of %s after Stop: %v (the logs stay)", name, err)
		}
	}
}

// A binary that is not etcd fails Start at once, saying it exited and
// naming it, and leaves nothing running.
func TestStartReportsAMemberThatExits(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "not-etcd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'no such flag' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Binary: bin, Members: 2, Dir: t.TempDir(), ReadyTimeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), bin) || !strings.Contains(err.Error(), "no such flag") {
		t.Fatalf("Start with a binary that exits: %v, want it named, with its log", err)
	}
	if _, err := Start(context.Background(), Options{Binary: bin, Members: 0, Dir: t.TempDir()}); err == nil {
		t.Fatal("Start of 0 members succeeded")
	}
}
