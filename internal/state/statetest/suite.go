// Package statetest is the contract of state.Store as a test suite, run by
// every backend: the bbolt store in internal/state and any other (etcd)
// that claims to implement the interface.
//
// Run covers what store.go and the state package doc promise of every
// backend: Create (atomic; ErrAlreadyExists changes nothing), Update
// (transition checks, revisions, fn errors), Get and List (filters,
// paging, newest first, the revision read at), Active, Revision, Watch
// (from a revision, history then live, ErrOutOfRange when compacted or
// ahead), request records, cancel tombstones and RemoveFinished.
//
// The suite asserts revisions only relative to each other, never as
// absolute numbers: a backend may start above zero (an etcd cluster shared
// by several stores) and may give the jobs of one Create a single
// revision (one etcd transaction). What it does require is that every
// change gets a revision above every earlier change, that a job's
// Revision is the revision of its last change, that Revision() is the
// newest, and that Watch delivers each change once, in order.
//
// What only one backend can be asked (the bbolt file layout, group commit
// batches, Options such as HistoryLimit and WatchBuffer, corruption of the
// file) stays in that backend's own tests.
package statetest

import (
	"context"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// Backend opens stores for the suite.
type Backend struct {
	// Open returns a new, empty store whose clock is clk, closed by a
	// t.Cleanup the backend registers (the suite may Close it first).
	// Two calls must give independent stores.
	Open func(t *testing.T, clk clock.Clock) state.Store
	// Reopen closes s and opens the same data again on clk, as a restart
	// of the daemon would.
	Reopen func(t *testing.T, s state.Store, clk clock.Clock) state.Store
}

// Run runs the whole suite against b, one subtest per promise.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExplicitCreateTimeKept", testCreateExplicitCreateTimeKept},
		{"CreateIsAtomic", testCreateIsAtomic},
		{"CreateValidation", testCreateValidation},
		{"Update", testUpdate},
		{"UpdateErrors", testUpdateErrors},
		{"NoOpUpdateWritesNothing", testNoOpUpdateWritesNothing},
		{"ConcurrentUpdatesGetDistinctRevisions", testConcurrentUpdatesGetDistinctRevisions},
		{"Close", testClose},
		{"ListFiltersAndPaging", testListFiltersAndPaging},
		{"ListStableUnderInserts", testListStableUnderInserts},
		{"ListLimitsAndTokens", testListLimitsAndTokens},
		{"ActiveIndexFollowsTransitions", testActiveIndexFollowsTransitions},
		{"CreateRequestReplaysSameID", testCreateRequestReplaysSameID},
		{"CreateRequestConcurrentIdenticalCreatesOnce", testCreateRequestConcurrentIdenticalCreatesOnce},
		{"CreateRequestReusesExisting", testCreateRequestReusesExisting},
		{"CreateRequestValidation", testCreateRequestValidation},
		{"TombstoneStopsCreate", testTombstoneStopsCreate},
		{"TombstoneLifted", testTombstoneLifted},
		{"RemoveFinished", testRemoveFinished},
		{"RemoveFinishedBatchesAndLimit", testRemoveFinishedBatchesAndLimit},
		{"RemoveKeepsWhatPoliciesNeed", testRemoveKeepsWhatPoliciesNeed},
		{"RemoveKeepsTombstonedJob", testRemoveKeepsTombstonedJob},
		{"RemoveDropsRequestRecords", testRemoveDropsRequestRecords},
		{"RunRetention", testRunRetention},
		{"WatchHistoryThenLive", testWatchHistoryThenLive},
		{"WatchResumeFromRevision", testWatchResumeFromRevision},
		{"WatchFutureAndInvalid", testWatchFutureAndInvalid},
		{"WatchEndings", testWatchEndings},
		{"ManyWatchersUnderLoad", testManyWatchersUnderLoad},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

// Epoch is the fake clock's start in every suite test.
var Epoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// open opens a store of b on a fake clock at Epoch.
func open(t *testing.T, b Backend) (state.Store, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(Epoch)
	return b.Open(t, fc), fc
}

// newJob returns a queued job whose id is time-ordered by the fake clock,
// which it moves by a millisecond so ids sort by creation.
func newJob(fc *clock.Fake, policy, image, region string) *job.Job {
	fc.Step(time.Millisecond)
	return &job.Job{
		ID:                job.NewID(fc.Now()),
		Policy:            policy,
		SourceRegion:      "cn-hangzhou",
		SourceImageID:     image,
		DestinationRegion: region,
		State:             job.StateQueued,
		Tags:              map[string]string{"team": "infra"},
	}
}

func mustCreate(t testing.TB, d state.Store, jobs ...*job.Job) {
	t.Helper()
	if err := d.Create(context.Background(), jobs...); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

func setState(s job.State) func(*job.Job) error {
	return func(j *job.Job) error { j.State = s; return nil }
}
