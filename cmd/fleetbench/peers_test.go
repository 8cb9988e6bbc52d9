package main

import (
	"context"
	"testing"
	"time"
)

// peerFleet is 4 images to 2 regions with 2 slots each, so that copies
// queue as Waiting; time-scaled so that its lower bound lasts about a
// wall second.
func peerFleet() (*fleet, *options, float64) {
	f := &fleet{Images: newFleet(4, 1), Regions: allDestinations[:2], Slots: 2, RateMiBps: 50, Startup: 30 * time.Second}
	o := &options{seed: 1, throttle: 1000, timeout: 2 * time.Minute}
	return f, o, autoScale(f.lowerBound().Makespan, time.Second)
}

// The smart script runs for real over HTTP against the emulator: every
// copy is accepted once, every accepted copy is seen to end, each success
// has a detection lag, and its calls are the submits plus its polls.
func TestScriptAccountsForEveryCopy(t *testing.T) {
	f, o, scale := peerFleet()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := runScript(ctx, o, f, scale, defaultScript)
	if err != nil {
		t.Fatalf("runScript: %v", err)
	}
	if r.Copies != 8 || r.Accepted != 8 || r.refused() != 0 {
		t.Fatalf("copies %d, accepted %d, refused %v; want 8, 8, none", r.Copies, r.Accepted, r.Refused)
	}
	if r.Succeeded+r.Failed != r.Accepted || r.Succeeded != 8 {
		t.Fatalf("succeeded %d + failed %d, want every one of the 8 accepted copies to succeed", r.Succeeded, r.Failed)
	}
	if len(r.Lags) != r.Succeeded {
		t.Fatalf("%d detection lags for %d successes: a success the replay of ECS's queue does not know", len(r.Lags), r.Succeeded)
	}
	for _, l := range r.Lags {
		if l < 0 {
			t.Fatalf("negative detection lag %s", l)
		}
	}
	if got := r.Calls["CopyImage"]["200"]; got != 8 {
		t.Fatalf("accepted CopyImage calls %d, want 8 (calls: %v)", got, r.Calls)
	}
	// Each poll asks for at most 100 ids in one call: with 4 copies per
	// region, a region needs at least one poll, and nothing else is called.
	polls := r.Calls.action("DescribeImages")
	if polls < int64(len(f.Regions)) || r.Calls.total() != 8+polls {
		t.Fatalf("calls %v: want 8 CopyImage plus at least one DescribeImages per region, nothing else", r.Calls)
	}
	if r.Makespan <= 0 || r.ECSDone < f.lowerBound().Makespan {
		t.Fatalf("makespan %s, ECS done at %s, lower bound %s: ECS cannot finish before the bound", r.Makespan, r.ECSDone, f.lowerBound().Makespan)
	}
}

// Packer sends one CopyImage per copy and nothing else, never learns how
// its copies end, and its makespan is ECS's queue's, which cannot beat the
// lower bound.
func TestPackerFireAndForget(t *testing.T) {
	f, o, scale := peerFleet()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := runPackerReal(ctx, o, f, scale)
	if err != nil {
		t.Fatalf("runPackerReal: %v", err)
	}
	if r.Accepted != 8 || r.Cancelled != 0 || r.refused() != 0 || r.notSent() != 0 {
		t.Fatalf("accepted %d, cancelled %d, refused %v, not sent %d; want 8, 0, none, 0", r.Accepted, r.Cancelled, r.Refused, r.notSent())
	}
	if !r.CompletionUnknown || r.Succeeded != 0 || len(r.Lags) != 0 {
		t.Fatalf("packer saw %d successes (%d lags), completion unknown %v: it never looks", r.Succeeded, len(r.Lags), r.CompletionUnknown)
	}
	if r.Calls.total() != 8 || r.Calls["CopyImage"]["200"] != 8 {
		t.Fatalf("calls %v, want exactly the 8 accepted CopyImage", r.Calls)
	}
	if r.Makespan != r.ECSDone || r.Makespan < f.lowerBound().Makespan {
		t.Fatalf("makespan %s, ECS done %s, lower bound %s", r.Makespan, r.ECSDone, f.lowerBound().Makespan)
	}
}

// A refused CopyImage halts Packer's build, whose Cleanup cancels the copies
// it had started: with flow control letting one CopyImage through in hours,
// one build makes one copy and cancels it, and the other builds stop at
// their first call.
func TestPackerHaltCancelsTheBuildsCopies(t *testing.T) {
	f, o, scale := peerFleet()
	o.throttle = 1e-3 / scale // the emulator's bucket: 1 token, refilled in 17 hours
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := runPackerReal(ctx, o, f, scale)
	if err != nil {
		t.Fatalf("runPackerReal: %v", err)
	}
	if r.Accepted != 1 || r.Cancelled != 1 || r.refused() != 4 || r.notSent() != 3 {
		t.Fatalf("accepted %d, cancelled %d, refused %v, never sent %d; want 1, 1, 4 (one per build), 3", r.Accepted, r.Cancelled, r.Refused, r.notSent())
	}
	if n := r.Calls["CancelCopyImage"]["200"]; n != 1 {
		t.Fatalf("calls %v, want the one CancelCopyImage of the halted build", r.Calls)
	}
	if r.Makespan != 0 {
		t.Fatalf("makespan %s with no copy left running", r.Makespan)
	}
}

// With copies failing, the script deletes each CreateFailed copy and
// submits it once more; every copy is accounted for: each accepted
// CopyImage ended Available or CreateFailed, each copy succeeded or was
// given up after two failed attempts. The urgent copy is one more copy,
// seen started by a poll after it was sent.
func TestScriptRecopiesFailedCopiesOnceAndAccountsForEvery(t *testing.T) {
	f, o, scale := peerFleet()
	f.FailRate = 0.5
	f.Urgent = &urgentImage
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := runScript(ctx, o, f, scale, defaultScript)
	if err != nil {
		t.Fatalf("runScript: %v", err)
	}
	if r.Copies != 9 || r.refused() != 0 {
		t.Fatalf("copies %d, refused %v; want the 8 fleet copies and the urgent one, none refused", r.Copies, r.Refused)
	}
	if r.FailedAttempts == 0 {
		t.Fatalf("no copy failed at a 50%% failure share (seed %d)", o.seed)
	}
	if r.Succeeded+r.Failed != r.Copies {
		t.Fatalf("succeeded %d + given up %d != %d copies", r.Succeeded, r.Failed, r.Copies)
	}
	if r.Accepted != r.Succeeded+r.FailedAttempts || int64(r.Accepted) != r.Calls["CopyImage"]["200"] {
		t.Fatalf("accepted %d (calls %v), succeeded %d, failed attempts %d: an accepted copy neither succeeded nor failed", r.Accepted, r.Calls, r.Succeeded, r.FailedAttempts)
	}
	// One second attempt per first failure, each after deleting the
	// failed copy; a copy is given up only after two failures.
	second := r.Accepted - r.Copies
	if second < 1 || r.Calls["DeleteImage"]["200"] != int64(second) || r.FailedAttempts != second+r.Failed {
		t.Fatalf("%d second attempts, %v deletes, %d failed attempts, %d given up", second, r.Calls["DeleteImage"], r.FailedAttempts, r.Failed)
	}
	if len(r.GivenUp) != r.Failed {
		t.Fatalf("given up %d, listed %v", r.Failed, r.GivenUp)
	}
	var busy time.Duration
	for _, st := range r.Regions {
		busy += st.Busy
	}
	if len(r.Regions) != len(f.Regions) || busy <= 0 {
		t.Fatalf("the script's regions %+v: want one per destination, with its work", r.Regions)
	}
	if !r.UrgentSeen || r.Urgent < 0 {
		t.Fatalf("urgent copy seen %v after %s", r.UrgentSeen, r.Urgent)
	}
}

// With ECS's copy-conflict rule the script keeps the refused CopyImage
// calls and sends them as each image's copy ends: every copy is made,
// none given up, and the refusals are in the calls, not in the copies.
func TestScriptRetriesCopyConflicts(t *testing.T) {
	f, o, scale := peerFleet()
	f.CopyConflict = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := runScript(ctx, o, f, scale, defaultScript)
	if err != nil {
		t.Fatalf("runScript: %v", err)
	}
	if r.Succeeded != 8 || r.Failed != 0 || r.refused() != 0 || r.Accepted != 8 {
		t.Fatalf("succeeded %d, given up %d, refused %v, accepted %d; want all 8 made once", r.Succeeded, r.Failed, r.Refused, r.Accepted)
	}
	if r.Calls["CopyImage"]["OperationDenied.ImageCopyConflict"] == 0 {
		t.Fatalf("calls %v: the first burst should meet the copy-conflict rule", r.Calls)
	}
	if b := f.lowerBound(); r.ECSDone < b.PerImage {
		t.Fatalf("ECS done at %s, before the chain of one image's copies (%s)", r.ECSDone, b.PerImage)
	}
}
