package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state/etcdstore"
	"github.com/replicatord/replicatord/internal/state/etcdstore/etcdtest"
	"github.com/replicatord/replicatord/internal/state/statetest"
)

// TestPolicyRunWithinDefaultTxnLimit: a policy run of 5 images to 12
// regions (60 jobs, about 180 operations) against an etcd member with
// etcd's default --max-txn-ops of 128, through a fenced store as the
// leader writes. The HA chaos test found such a run refused with "too
// many operations in txn request" on every try, so the policy never
// copied anything; CreateUnlessCancelled now splits it into transactions
// within the limit, still leaving out the cancelled pair.
func TestPolicyRunWithinDefaultTxnLimit(t *testing.T) {
	ctx := context.Background()
	e, err := etcdtest.Start(t.TempDir(), 128) // etcd's default
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fc := clock.NewFake(statetest.Epoch)
	base, err := etcdstore.New(ctx, c, etcdstore.Options{Prefix: "/limit/", Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	const fenceKey = "/limit/election/leader"
	put, err := c.Put(ctx, fenceKey, "r1")
	if err != nil {
		t.Fatal(err)
	}
	s := base.Fenced(fenceKey, put.Header.Revision)

	mk := func(image, region string) *job.Job {
		fc.Step(time.Millisecond)
		return &job.Job{ID: job.NewID(fc.Now()), Policy: "p", SourceRegion: "cn-hangzhou", SourceImageID: image,
			DestinationRegion: region, State: job.StateQueued}
	}
	cancelled := mk("m-0", "r-0")
	if err := s.Create(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, cancelled.ID, func(j *job.Job) error {
		j.State, j.CancelRequested, j.CancelledBy, j.CancelTime = job.StateCancelled, true, "api (test)", fc.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var run []*job.Job
	for i := 0; i < 5; i++ {
		for r := 0; r < 12; r++ {
			run = append(run, mk(fmt.Sprintf("m-%d", i), fmt.Sprintf("r-%d", r)))
		}
	}
	skipped, err := s.CreateUnlessCancelled(ctx, run...)
	if err != nil {
		t.Fatalf("a policy run of %d jobs: %v", len(run), err)
	}
	if len(skipped) != 1 || skipped[0].JobID != cancelled.ID {
		t.Fatalf("skipped = %+v, want the cancelled pair's tombstone only", skipped)
	}
	active, err := s.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != len(run)-1 {
		t.Fatalf("%d active jobs after the run, want %d", len(active), len(run)-1)
	}
	for _, j := range run[1:] {
		if j.Revision == 0 {
			t.Fatalf("job %s has no revision after the run", j.ID)
		}
	}

	// A Copy stays one transaction: one to 50 destinations is more than
	// etcd takes. The refusal is permanent (not Unavailable, which callers
	// retry), says what to do, and stores nothing.
	var copy50 []*job.Job
	for r := 0; r < 50; r++ {
		copy50 = append(copy50, mk("m-big", fmt.Sprintf("r-%d", r)))
	}
	err = s.Create(ctx, copy50...)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "--max-txn-ops") {
		t.Fatalf("a Copy of 50 jobs: %v, want ErrInvalidArgument naming --max-txn-ops", err)
	}
	if after, err := s.Active(ctx); err != nil || len(after) != len(active) {
		t.Fatalf("after the refused Copy: %d active jobs (%v), want %d", len(after), err, len(active))
	}
}

// TestMaxTxnOpsFollowsTheCluster: a cluster run with a --max-txn-ops
// below etcd's default refuses the policy runs of a store that assumes
// the default, every time, until the store is told the cluster's limit
// (store.etcd.max_txn_ops); then the same run is stored.
func TestMaxTxnOpsFollowsTheCluster(t *testing.T) {
	ctx := context.Background()
	e, err := etcdtest.Start(t.TempDir(), 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fc := clock.NewFake(statetest.Epoch)
	run := func() []*job.Job {
		var jobs []*job.Job
		for r := 0; r < 30; r++ {
			fc.Step(time.Millisecond)
			jobs = append(jobs, &job.Job{ID: job.NewID(fc.Now()), Policy: "p", SourceRegion: "cn-hangzhou", SourceImageID: "m-0",
				DestinationRegion: fmt.Sprintf("r-%d", r), State: job.StateQueued})
		}
		return jobs
	}
	for _, tc := range []struct {
		prefix    string
		maxTxnOps int
		ok        bool
	}{{"/default/", 0, false}, {"/told/", 32, true}} {
		s, err := etcdstore.New(ctx, c, etcdstore.Options{Prefix: tc.prefix, Clock: fc, MaxTxnOps: tc.maxTxnOps})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateUnlessCancelled(ctx, run()...)
		active, aerr := s.Active(ctx)
		s.Close()
		if aerr != nil {
			t.Fatal(aerr)
		}
		switch {
		case tc.ok && (err != nil || len(active) != 30):
			t.Fatalf("MaxTxnOps %d against --max-txn-ops 32: %v, %d jobs stored, want 30", tc.maxTxnOps, err, len(active))
		case !tc.ok && (!errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "max_txn_ops")):
			t.Fatalf("MaxTxnOps %d against --max-txn-ops 32: %v, want ErrInvalidArgument naming max_txn_ops", tc.maxTxnOps, err)
		}
	}
}
