package statetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

func testCreateRequestReplaysSameID(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	a, b := newJob(fc, "", "m-src", "cn-beijing"), newJob(fc, "", "m-src", "cn-shanghai")
	res, err := d.CreateRequest(ctx, &state.Request{ID: "req-1", Fingerprint: "fp1", Summary: "copy m-src", Jobs: []*job.Job{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed || len(res.Created) != 2 || len(res.Jobs) != 2 || res.Record.JobIDs[0] != a.ID || res.Record.JobIDs[1] != b.ID {
		t.Fatalf("first call: %+v", res)
	}
	rev := d.Revision()

	// The same id and parameters: the same jobs, nothing created.
	c, e := newJob(fc, "", "m-src", "cn-beijing"), newJob(fc, "", "m-src", "cn-shanghai")
	again, err := d.CreateRequest(ctx, &state.Request{ID: "req-1", Fingerprint: "fp1", Jobs: []*job.Job{c, e}})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || len(again.Created) != 0 || again.Jobs[0].ID != a.ID || again.Jobs[1].ID != b.ID {
		t.Fatalf("replay: %+v", again)
	}
	if d.Revision() != rev {
		t.Fatalf("a replay changed the revision %d -> %d", rev, d.Revision())
	}
	if _, err := d.Get(ctx, c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a replay created job %s: %v", c.ID, err)
	}

	// The same id with other parameters: refused, naming the first request.
	_, err = d.CreateRequest(ctx, &state.Request{ID: "req-1", Fingerprint: "fp2", Jobs: []*job.Job{newJob(fc, "", "m-other", "cn-beijing")}})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("other parameters = %v, want ErrAlreadyExists", err)
	}
	for _, w := range []string{`"req-1"`, "copy m-src", a.ID, b.ID} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}

	// GetRequest reads it; the record survives a reopen.
	d2 := be.Reopen(t, d, fc)
	got, err := d2.GetRequest(ctx, "req-1")
	if err != nil || !got.Replayed || len(got.Jobs) != 2 || got.Record.Fingerprint != "fp1" {
		t.Fatalf("GetRequest after reopen = %+v, %v", got, err)
	}
	if _, err := d2.GetRequest(ctx, "req-2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("GetRequest of an unknown id = %v", err)
	}
}

func testCreateRequestConcurrentIdenticalCreatesOnce(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	const n = 16
	reqs := make([]*state.Request, n)
	for i := range reqs {
		reqs[i] = &state.Request{ID: "same", Fingerprint: "fp", Jobs: []*job.Job{newJob(fc, "", "m-src", "cn-beijing")}}
	}
	var wg sync.WaitGroup
	results := make([]*state.RequestResult, n)
	errs := make([]error, n)
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = d.CreateRequest(ctx, reqs[i])
		}()
	}
	wg.Wait()
	created := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		created += len(results[i].Created)
		if results[i].Jobs[0].ID != results[0].Jobs[0].ID {
			t.Errorf("request %d got job %s, request 0 got %s", i, results[i].Jobs[0].ID, results[0].Jobs[0].ID)
		}
	}
	all, _, _, err := d.List(ctx, state.Filter{}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if created != 1 || len(all) != 1 {
		t.Fatalf("%d concurrent identical requests created %d jobs (%d stored), want 1", n, created, len(all))
	}
}

func testCreateRequestReusesExisting(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	policyJob := newJob(fc, "golden", "m-src", "cn-beijing")
	other := newJob(fc, "", "m-src", "cn-shenzhen") // another destination
	mustCreate(t, d, policyJob, other)
	reuse := func(existing, wanted *job.Job) bool { return existing.Policy == "golden" }

	// No id: cn-beijing is answered by the policy's job, cn-shanghai created.
	bj, sj := newJob(fc, "", "m-src", "cn-beijing"), newJob(fc, "", "m-src", "cn-shanghai")
	res, err := d.CreateRequest(ctx, &state.Request{Jobs: []*job.Job{bj, sj}, Reuse: reuse})
	if err != nil {
		t.Fatal(err)
	}
	if res.Jobs[0].ID != policyJob.ID || !res.Record.Existing[0] || res.Jobs[1].ID != sj.ID || res.Record.Existing[1] {
		t.Fatalf("reuse: jobs %s %s existing %v", res.Jobs[0].ID, res.Jobs[1].ID, res.Record.Existing)
	}
	if len(res.Created) != 1 || res.Created[0].ID != sj.ID {
		t.Fatalf("created %v, want only %s", res.Created, sj.ID)
	}
	if _, err := d.Get(ctx, bj.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the reused destination's new job was stored: %v", err)
	}
	if _, err := d.GetRequest(ctx, "x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a request without an id was recorded: %v", err)
	}

	// With an id and every destination reused: nothing is created, but the
	// record is committed and replays.
	res, err = d.CreateRequest(ctx, &state.Request{ID: "all-reused", Fingerprint: "f", Jobs: []*job.Job{newJob(fc, "", "m-src", "cn-beijing")}, Reuse: reuse})
	if err != nil || len(res.Created) != 0 || res.Jobs[0].ID != policyJob.ID {
		t.Fatalf("all reused: %+v, %v", res, err)
	}
	if got, err := d.GetRequest(ctx, "all-reused"); err != nil || got.Jobs[0].ID != policyJob.ID || !got.Record.Existing[0] {
		t.Fatalf("record of an all-reused request: %+v, %v", got, err)
	}

	// A panicking Reuse fails its request alone.
	_, err = d.CreateRequest(ctx, &state.Request{Jobs: []*job.Job{newJob(fc, "", "m-src", "cn-beijing")}, Reuse: func(_, _ *job.Job) bool { panic("boom") }})
	if !errors.Is(err, errdefs.ErrInternal) {
		t.Fatalf("panicking Reuse = %v, want ErrInternal", err)
	}
}

func testCreateRequestValidation(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	for _, id := range []string{strings.Repeat("a", 65), "has space", "nul\x00", "é"} {
		_, err := d.CreateRequest(ctx, &state.Request{ID: id, Jobs: []*job.Job{newJob(fc, "", "m", "r")}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || errdefs.Field(err) != "request_id" {
			t.Errorf("id %q: %v, want an invalid request_id", id, err)
		}
	}
	if _, err := d.CreateRequest(ctx, &state.Request{ID: "ok"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no jobs: %v", err)
	}
	if err := state.ValidRequestID(strings.Repeat("~", 64)); err != nil {
		t.Errorf("64 printable characters refused: %v", err)
	}
}
