package main

import (
	"context"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/job"
)

// TestTraceCountsPollsNotListings: the per-region poll count (the -v
// table's "polls") counts DescribeImages calls that name their copies;
// a listing by tag, as replicatord's adoption sweep of a new state file
// makes once per region, is an API call but not a poll.
func TestTraceCountsPollsNotListings(t *testing.T) {
	f := &fleet{Images: newFleet(2, 1), Regions: allDestinations[:2], Slots: 2, RateMiBps: 50, Startup: 30 * time.Second}
	emu, err := startEmulator(f, 1, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer emu.close()
	p, err := newPeerProvider(emu, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	poll, list := f.Regions[0], f.Regions[1]
	if _, err := p.DescribeImages(ctx, cloud.ImageQuery{Region: poll, IDs: []string{"m-uf6nosuchcopy000001"}, Statuses: cloud.AllStatuses}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DescribeImages(ctx, cloud.ImageQuery{Region: list, OwnerAlias: "self", Statuses: cloud.AllStatuses, Tags: map[string]string{job.TagJobID: ""}}); err != nil {
		t.Fatal(err)
	}
	emu.trace.mu.Lock()
	defer emu.trace.mu.Unlock()
	if n := len(emu.trace.polls[poll]); n != 1 {
		t.Errorf("polls of %s = %d, want 1 (a DescribeImages by id)", poll, n)
	}
	if n := len(emu.trace.polls[list]); n != 0 {
		t.Errorf("polls of %s = %d, want 0 (a listing by tag is not a poll)", list, n)
	}
	if n := emu.emu.Stats().Calls["DescribeImages"]["200"]; n != 2 {
		t.Errorf("DescribeImages calls = %d, want 2 (both are API calls)", n)
	}
}
