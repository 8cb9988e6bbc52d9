package statetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// listFixture creates n jobs over a few policies, images, regions and
// states, and returns them newest first.
func listFixture(t *testing.T, d state.Store, fc *clock.Fake, n int) []*job.Job {
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
func listAll(t *testing.T, d state.Store, f state.Filter, limit int) []*job.Job {
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

func ids(jobs []*job.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

func testListFiltersAndPaging(t *testing.T, be Backend) {
	d, fc := open(t, be)
	all := listFixture(t, d, fc, 120)
	filters := []state.Filter{
		{},
		{Policy: "nightly"},
		{SourceImageID: "m-3"},
		{DestinationRegion: "eu-central-1"},
		{States: []job.State{job.StateQueued}},
		{States: []job.State{job.StateSubmitting, job.StateWaiting}},
		{States: []job.State{job.StateSucceeded, job.StateFailed, job.StateCancelled}},
		{States: []job.State{job.StateSucceeded, job.StateQueued}},
		{Policy: "weekly", DestinationRegion: "cn-shanghai"},
		{SourceImageID: "m-1", States: []job.State{job.StateQueued}},
		{IDs: []string{all[5].ID, all[50].ID, all[5].ID, "j-nonexistent"}},
		{IDs: []string{all[7].ID}, Policy: "no-such-policy"},
		{Policy: "no-such-policy"},
	}
	for _, f := range filters {
		var want []*job.Job
		for _, j := range all {
			if f.Match(j) {
				want = append(want, j)
			}
		}
		for _, limit := range []int{1, 7, 1000} {
			got := listAll(t, d, f, limit)
			if !slices.Equal(ids(got), ids(want)) {
				t.Errorf("filter %+v limit %d:\n got %d jobs %v\nwant %d jobs %v", f, limit, len(got), ids(got), len(want), ids(want))
			}
		}
	}
	// Newest first.
	got := listAll(t, d, state.Filter{}, 1000)
	if !slices.IsSortedFunc(got, func(a, b *job.Job) int { return -cmpStr(a.ID, b.ID) }) || got[0].ID != all[0].ID {
		t.Fatal("List is not newest first")
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testListStableUnderInserts(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	all := listFixture(t, d, fc, 30)
	page1, next, _, err := d.List(ctx, state.Filter{}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		mustCreate(t, d, newJob(fc, "", "m", "r")) // newer than everything listed
	}
	var rest []*job.Job
	for next != "" {
		var page []*job.Job
		page, next, _, err = d.List(ctx, state.Filter{}, 10, next)
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, page...)
	}
	if got := ids(append(page1, rest...)); !slices.Equal(got, ids(all)) {
		t.Fatalf("paging across inserts gave %d jobs, want the original %d in order", len(got), len(all))
	}
}

func testListLimitsAndTokens(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	var jobs []*job.Job
	for i := 0; i < 1100; i++ {
		jobs = append(jobs, newJob(fc, "", "m", "r"))
	}
	mustCreate(t, d, jobs...)
	got, next, _, err := d.List(ctx, state.Filter{}, 0, "")
	if err != nil || len(got) != 100 || next == "" {
		t.Fatalf("limit 0: %d jobs, next %q, %v; want the default 100", len(got), next, err)
	}
	got, _, _, err = d.List(ctx, state.Filter{}, 5000, "")
	if err != nil || len(got) != 1000 {
		t.Fatalf("limit 5000: %d jobs, %v; want clamped to 1000", len(got), err)
	}
	for _, tok := range []string{"!!!", "Zm9v", "YQ", next[1:]} {
		if _, _, _, err := d.List(ctx, state.Filter{}, 10, tok); !errors.Is(err, errdefs.ErrInvalidArgument) || errdefs.Field(err) != "page_token" {
			t.Errorf("token %q: %v, want ErrInvalidArgument on page_token", tok, err)
		}
	}
}

// testActiveIndexFollowsTransitions walks jobs through their lives and
// checks Active (read through an index) after each step and after a
// reopen.
func testActiveIndexFollowsTransitions(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	all := listFixture(t, d, fc, 60)
	check := func(d state.Store) {
		t.Helper()
		active, err := d.Active(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, j := range all {
			if !j.State.Terminal() {
				want = append(want, j.ID)
			}
		}
		slices.Sort(want) // Active is oldest first
		if !slices.Equal(ids(active), want) {
			t.Fatalf("Active = %d jobs, want %d", len(active), len(want))
		}
		for _, j := range active {
			if j.State.Terminal() {
				t.Fatalf("Active returned %s job %s", j.State, j.ID)
			}
		}
	}
	check(d)
	// Retry a failed job (terminal -> active) and finish an active one.
	for i, j := range all {
		var to job.State
		switch j.State {
		case job.StateFailed:
			to = job.StateQueued
		case job.StateSubmitting:
			to = job.StateSucceeded
		default:
			continue
		}
		got, err := d.Update(ctx, j.ID, setState(to))
		if err != nil {
			t.Fatal(err)
		}
		all[i] = got
	}
	check(d)
	check(be.Reopen(t, d, fc))
}
