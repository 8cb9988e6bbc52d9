package statetest

import (
	"context"
	"testing"

	"github.com/replicatord/replicatord/internal/job"
)

// testTombstoneStopsCreate: the cancel of a policy job leaves a tombstone
// in the same transaction; CreateUnlessCancelled leaves out a new job of
// that pair (and only of that pair) and says why; a retry of the
// cancelled job lifts it; it survives a restart.
func testTombstoneStopsCreate(t *testing.T, be Backend) {
	ctx := context.Background()
	d, fc := open(t, be)
	cancelled := newJob(fc, "p", "m-1", "cn-shanghai")
	adhoc := newJob(fc, "", "m-1", "cn-shanghai")
	mustCreate(t, d, cancelled, adhoc)
	if _, err := d.Update(ctx, cancelled.ID, func(j *job.Job) error {
		j.State, j.CancelRequested, j.CancelledBy, j.CancelTime = job.StateCancelled, true, "api (test)", fc.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	again := newJob(fc, "p", "m-1", "cn-shanghai")
	other := newJob(fc, "p", "m-1", "cn-beijing")
	adhoc2 := newJob(fc, "", "m-1", "cn-shanghai")
	skipped, err := d.CreateUnlessCancelled(ctx, again, other, adhoc2)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].JobID != cancelled.ID || skipped[0].By != "api (test)" || skipped[0].Time.IsZero() {
		t.Fatalf("skipped = %+v, want the tombstone of %s", skipped, cancelled.ID)
	}
	if _, err := d.Get(ctx, again.ID); err == nil {
		t.Errorf("job %s of the cancelled pair was created", again.ID)
	}
	for _, j := range []*job.Job{other, adhoc2} {
		if got, err := d.Get(ctx, j.ID); err != nil || got.Revision == 0 || j.Revision == 0 {
			t.Errorf("job %s: %v, %+v", j.ID, err, got)
		}
	}
	// Durable: the tombstone is there after a restart.
	d = be.Reopen(t, d, fc)
	tombs, err := d.Tombstones(ctx, "p")
	if err != nil || len(tombs) != 1 || tombs[0].SourceImageID != "m-1" || tombs[0].DestinationRegion != "cn-shanghai" {
		t.Fatalf("tombstones = %+v, %v", tombs, err)
	}
	if tombs, _ := d.Tombstones(ctx, "q"); len(tombs) != 0 {
		t.Errorf("policy q has tombstones %+v", tombs)
	}
	// A retry of the cancelled job lifts the tombstone.
	if _, err := d.Update(ctx, cancelled.ID, func(j *job.Job) error {
		j.State, j.CancelRequested = job.StateQueued, false
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if tombs, _ := d.Tombstones(ctx, "p"); len(tombs) != 0 {
		t.Errorf("after retry: tombstones %+v", tombs)
	}
	third := newJob(fc, "p", "m-1", "cn-shanghai")
	if skipped, err := d.CreateUnlessCancelled(ctx, third); err != nil || len(skipped) != 0 {
		t.Errorf("after retry: skipped %+v, %v", skipped, err)
	}
}

// testTombstoneLifted: setting CancelLifted on the cancelled job (a policy
// change that names the image) deletes its tombstone in the same update.
func testTombstoneLifted(t *testing.T, be Backend) {
	ctx := context.Background()
	d, fc := open(t, be)
	j := newJob(fc, "p", "m-1", "cn-shanghai")
	mustCreate(t, d, j)
	if _, err := d.Update(ctx, j.ID, func(j *job.Job) error {
		j.State, j.CancelRequested, j.CancelledBy, j.CancelTime = job.StateCancelled, true, "api", fc.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if tombs, _ := d.Tombstones(ctx, "p"); len(tombs) != 1 {
		t.Fatalf("tombstones = %+v", tombs)
	}
	got, err := d.Update(ctx, j.ID, func(j *job.Job) error { j.CancelLifted = "policy p changed"; return nil })
	if err != nil || got.State != job.StateCancelled {
		t.Fatalf("lift: %+v, %v", got, err)
	}
	if tombs, _ := d.Tombstones(ctx, "p"); len(tombs) != 0 {
		t.Errorf("after the lift: tombstones %+v", tombs)
	}
}
