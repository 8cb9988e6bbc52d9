package state

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/job"
)

// listFixture creates n jobs over a few policies, images, regions and
// states, and returns them newest first.
func listFixture(t *testing.T, d *DB, fc *clock.Fake, n int) []*job.Job {
	t.Helper()
	ctx := context.Background()
	var all []*job.Job
	for i := 0; i < n; i++ {
		policy := []string{"", "nightly", "weekly"}[i%3]
		all = append(all, newJob(fc, policy, fmt.Sprintf("m-%d", i%7), []string{"cn-beijing", "cn-shanghai", "eu-central-1", "us-west-1"}[i%4]))
	}
	mustCreate(t, d, all...)
	// Move some jobs along, through terminal states too.
	paths := [][]job.State{
		{job.StateSubmitting},
		{job.StateSubmitting, job.StateCopying, job.StateSucceeded},
		{job.StateFailed},
		{job.StateCancelled},
		{job.StateSubmitting, job.StateWaiting},
	}
	// Concurrently, so that group commit keeps the fixture fast.
	var wg sync.WaitGroup
	for i, j := range all {
		if i%2 == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range paths[i%len(paths)] {
				got, err := d.Update(ctx, j.ID, setState(s))
				if err != nil {
					t.Error(err)
					return
				}
				all[i] = got
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	slices.Reverse(all)
	return all
}

// listAll pages through List with limit and returns every job.
func listAll(t *testing.T, d *DB, f Filter, limit int) []*job.Job {
	t.Helper()
	var out []*job.Job
	tok := ""
	for pages := 0; ; pages++ {
		jobs, next, rev, err := d.List(context.Background(), f, limit, tok)
		if err != nil {
			t.Fatal(err)
		}
		if rev != d.Revision() {
			t.Fatalf("List rev %d, store at %d", rev, d.Revision())
		}
		if len(jobs) > limit || (next != "" && len(jobs) != limit) {
			t.Fatalf("page of %d jobs with limit %d and next %q", len(jobs), limit, next)
		}
		out = append(out, jobs...)
		if next == "" {
			return out
		}
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		tok = next
	}
}
