package server

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state/etcdstore"
	"github.com/replicatord/replicatord/internal/state/etcdstore/etcdtest"
	"github.com/replicatord/replicatord/internal/transport"
)

// A Watch resumed with from_revision while etcd cannot be reached waits
// for etcd and then goes on. It used to be refused OUT_OF_RANGE ("ahead of
// the store's revision"), which sends a client back to a full snapshot:
// the server compared from_revision with Store.Revision(), which on etcd
// answers its last good read when etcd does not answer, and that read
// predates the other replica's writes the client had already seen. The
// store's own Watch checks the revision once etcd answers.
func TestWatchResumeWaitsOutEtcdOutage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := etcdtest.Start(filepath.Join(dir, "etcd"), 128)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	// Two replicas' stores on one prefix: this server's (a) and the
	// other's (b), which writes after a last read the revision.
	a, err := etcdstore.New(ctx, cli, etcdstore.Options{Prefix: "/w/", RevisionTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := etcdstore.New(ctx, cli, etcdstore.Options{Prefix: "/w/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	now := time.Now()
	mk := func(n time.Duration) *job.Job {
		return &job.Job{ID: job.NewID(now.Add(n)), SourceRegion: "cn-hangzhou", SourceImageID: img20, DestinationRegion: "cn-beijing", State: job.StateQueued}
	}
	j1, j2 := mk(0), mk(time.Millisecond)
	if err := a.Create(ctx, j1); err != nil {
		t.Fatal(err)
	}
	if got := a.Revision(); got != j1.Revision {
		t.Fatalf("a.Revision() = %d, want %d", got, j1.Revision)
	}
	if err := b.Create(ctx, j2); err != nil {
		t.Fatal(err)
	}

	started := make(chan struct{}, 1)
	srv := New(a, nil, nil, Options{WatchStarted: func() func() {
		started <- struct{}{}
		return func() {}
	}})
	sock := filepath.Join(dir, "s.sock")
	gopts, err := transport.ServerOptions(transport.ServerConfig{Address: "unix://" + sock}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(gopts...)
	srv.Register(g)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	m.Stop()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	w, err := pb.NewReplicatorServiceClient(conn).Watch(wctx, &pb.WatchRequest{FromRevision: j2.Revision})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *pb.WatchResponse, 16)
	failed := make(chan error, 1)
	go func() {
		for {
			r, err := w.Recv()
			if err != nil {
				failed <- err
				return
			}
			got <- r
		}
	}()
	<-started // the handler runs while etcd is down
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	up, err := b.Update(ctx, j2.ID, func(j *job.Job) error { j.Priority = 7; return nil })
	if err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case err := <-failed:
			t.Fatalf("Watch from revision %d across the outage: %v", j2.Revision, err)
		case r := <-got:
			if r.GetRevision() < j2.Revision {
				t.Fatalf("Watch from revision %d sent revision %d", j2.Revision, r.GetRevision())
			}
			if r.GetRevision() == up.Revision && r.GetJob().GetId() == j2.ID && r.GetJob().GetPriority() == 7 {
				return
			}
		}
	}
}
