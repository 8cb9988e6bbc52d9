package etcdstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state/etcdstore"
	"github.com/replicatord/replicatord/internal/state/statetest"
)

func queued(fc *clock.Fake, image string) *job.Job {
	fc.Step(1e6)
	return &job.Job{ID: job.NewID(fc.Now()), SourceRegion: "cn-hangzhou", SourceImageID: image,
		DestinationRegion: "cn-beijing", State: job.StateQueued}
}

// TestWatchEtcdCompacted: a revision etcd itself compacted (the cluster's
// auto-compaction) is ErrOutOfRange, at Watch and for a watcher that was
// behind; a revision after the compaction still watches.
func TestWatchEtcdCompacted(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(statetest.Epoch)
	s := open(t, "/test/compacted/", fc)
	a := queued(fc, "m-1")
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	j, err := s.Update(ctx, a.ID, func(j *job.Job) error { j.ProgressPercent = 10; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, j.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Watch(ctx, a.Revision-1); !errors.Is(err, errdefs.ErrOutOfRange) || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("Watch from before etcd's compaction = %v, want ErrOutOfRange saying compacted", err)
	}
	w, err := s.Watch(ctx, j.Revision)
	if err != nil {
		t.Fatalf("Watch from the compaction revision: %v", err)
	}
	defer w.Close()
	next, err := s.Update(ctx, a.ID, func(j *job.Job) error { j.ProgressPercent = 20; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-w.Events(); ev.Revision != next.Revision || ev.Job.ProgressPercent != 20 {
		t.Fatalf("event %d %+v, want revision %d", ev.Revision, ev.Job, next.Revision)
	}
}

// TestStoresShareACluster: two prefixes on one cluster see only their own
// jobs and changes; another store's writes do not move a store's Revision.
func TestStoresShareACluster(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(statetest.Epoch)
	s1, s2 := open(t, "/test/share-1/", fc), open(t, "/test/share-2", fc)
	w, err := s1.Watch(ctx, s1.Revision())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rev1 := s1.Revision()
	other := queued(fc, "m-2")
	if err := s2.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	if s1.Revision() != rev1 {
		t.Fatalf("store 1 moved from %d to %d on store 2's change", rev1, s1.Revision())
	}
	if _, err := s1.Get(ctx, other.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("store 1 sees store 2's job: %v", err)
	}
	mine := queued(fc, "m-1")
	if err := s1.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if ev := <-w.Events(); ev.Job.ID != mine.ID {
		t.Fatalf("store 1's watcher got job %s, want its own %s", ev.Job.ID, mine.ID)
	}
}

// TestNewValidates: a store needs a client and a prefix.
func TestNewValidates(t *testing.T) {
	if _, err := etcdstore.New(context.Background(), cli, etcdstore.Options{}); !errors.Is(err, errdefs.ErrInvalidArgument) || errdefs.Field(err) != "prefix" {
		t.Fatalf("New without a prefix = %v, want InvalidArgument on prefix", err)
	}
	if _, err := etcdstore.New(context.Background(), (*clientv3.Client)(nil), etcdstore.Options{Prefix: "/x/"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("New without a client = %v, want InvalidArgument", err)
	}
}
