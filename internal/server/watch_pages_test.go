package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// A snapshot larger than the store's pages (state.Snapshot reads 256 jobs
// at a time) still holds every matching job once, every message at the
// snapshot's revision, then snapshot_complete at that revision, then the
// changes after it: a filtered Watch gets only its jobs.
func TestWatchSnapshotSpansPages(t *testing.T) {
	s := newStack(t, state.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 700
	start := time.Now().Add(-time.Hour)
	var jobs []*job.Job
	for i := range n {
		jobs = append(jobs, &job.Job{
			ID:                job.NewID(start.Add(time.Duration(i) * time.Millisecond)),
			Policy:            fmt.Sprintf("p%d", i%2),
			SourceRegion:      "cn-hangzhou",
			SourceImageID:     img20,
			DestinationRegion: "cn-beijing",
			State:             job.StateSucceeded,
		})
	}
	if err := s.store.Create(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		policy string
		want   int
	}{{"", n}, {"p1", n / 2}} {
		w, err := s.client.Watch(ctx, &pb.WatchRequest{Policy: c.policy})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var snapRev int64 = -1
		for {
			m, err := w.Recv()
			if err != nil {
				t.Fatalf("policy %q: after %d jobs: %v", c.policy, len(seen), err)
			}
			if snapRev < 0 {
				snapRev = m.Revision
			}
			if m.Revision != snapRev {
				t.Fatalf("policy %q: snapshot message at revision %d, the first was at %d", c.policy, m.Revision, snapRev)
			}
			if m.SnapshotComplete {
				break
			}
			if !m.Snapshot || seen[m.Job.Id] || (c.policy != "" && m.Job.Policy != c.policy) {
				t.Fatalf("policy %q: message %v: want each matching job once, marked snapshot", c.policy, m)
			}
			seen[m.Job.Id] = true
		}
		if len(seen) != c.want {
			t.Fatalf("policy %q: snapshot of %d jobs, want %d", c.policy, len(seen), c.want)
		}
		// The oldest job of policy p1 (on the last page) changes: the
		// watcher gets the change, after the snapshot's revision.
		changed, err := s.store.Update(ctx, jobs[1].ID, func(j *job.Job) error { j.Tags = map[string]string{"round": c.policy + "x"}; return nil })
		if err != nil {
			t.Fatal(err)
		}
		m, err := w.Recv()
		if err != nil || m.Snapshot || m.Job.GetId() != changed.ID || m.Revision != changed.Revision || m.Revision <= snapRev {
			t.Fatalf("policy %q: after the snapshot at %d got %v, %v; want job %s's change at revision %d", c.policy, snapRev, m, err, changed.ID, changed.Revision)
		}
	}
}
