package state

import (
	"context"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/job"
)

const day = 24 * time.Hour

// finish moves a queued job to the terminal state s.
func finish(t testing.TB, d *DB, id string, s job.State) *job.Job {
	t.Helper()
	ctx := context.Background()
	if s == job.StateSucceeded {
		if _, err := d.Update(ctx, id, setState(job.StateSubmitting)); err != nil {
			t.Fatal(err)
		}
	}
	j, err := d.Update(ctx, id, setState(s))
	if err != nil {
		t.Fatalf("finish %s as %s: %v", id, s, err)
	}
	return j
}

// TestRemoveRechecks: a candidate that changed between the read and the
// write (retried, say) is kept.
func TestRemoveRechecks(t *testing.T) {
	d, fc := testStore(t, Options{})
	j := newJob(fc, "p", "m-1", "r1")
	mustCreate(t, d, j)
	finish(t, d, j.ID, job.StateFailed)
	fc.Step(2 * day)
	cutoff := fc.Now().Add(-day)
	if _, err := d.Update(context.Background(), j.ID, setState(job.StateQueued)); err != nil {
		t.Fatal(err)
	}
	n, err := d.remove([]string{j.ID, "no-such-job"}, cutoff)
	if err != nil || n != 0 {
		t.Fatalf("remove of a job retried since it was picked: %d, %v; want 0", n, err)
	}
	if _, err := d.Get(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
}
