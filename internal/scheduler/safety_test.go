package scheduler

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/job"
)

// imageExists reports whether id is in region (any status).
func (h *harness) imageExists(region, id string) bool {
	h.t.Helper()
	imgs, err := h.cloud.DescribeImages(context.Background(), cloud.ImageQuery{Region: region, IDs: []string{id},
		Statuses: append(append([]string(nil), cloud.AllStatuses...), cloud.StatusDeprecated)})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(imgs) == 1
}

// TestCancelNotSupportedOutlastsBudget: ECS answers every CancelCopyImage
// with CancelNotSupported and the copy runs for half an hour, far beyond
// the retry budget. The cancel is carried through anyway: the copy is
// followed and deleted once Available, and the job ends CANCELLED with
// nothing left in ECS (it used to end FAILED CancelNotSupported with the
// copy still Creating, and a retry then made a second one).
func TestCancelNotSupportedOutlastsBudget(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(100), CancelNotSupportedRate: 1},
		Options{MaxRetries: 2, RetryBase: time.Second, RetryMax: 30 * time.Second})
	j := newJob(0, 100, "cn-shanghai")
	h.submit(j)
	h.runUntil("copying", time.Second, 20, func() bool { return h.job(j.ID).State == job.StateCopying })
	if _, err := h.s.Cancel(context.Background(), []string{j.ID}); err != nil {
		t.Fatal(err)
	}
	sawRetry := false
	h.runUntil("cancelled", time.Minute, 120, func() bool {
		got := h.job(j.ID)
		if got.State == job.StateFailed {
			t.Fatalf("job FAILED %+v with its copy in ECS", got.Error)
		}
		if got.State == job.StateCancelling && got.Error != nil && got.Error.Code == "CancelNotSupported" && !got.NextAttemptTime.IsZero() {
			sawRetry = true
		}
		return got.State.Terminal()
	})
	got := h.job(j.ID)
	if got.State != job.StateCancelled || got.Error != nil {
		t.Fatalf("job = %s %+v, want CANCELLED", got.State, got.Error)
	}
	if !sawRetry {
		t.Error("the job never showed the CancelNotSupported retry and its next attempt")
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 0 {
		t.Fatalf("%d copies left after the cancel, want 0", n)
	}
	if got.Retries <= 2 {
		t.Errorf("retries = %d: the cancel should have gone past the budget of 2", got.Retries)
	}
}

// TestGuardRefusesForgedImage: an image carrying the complete tag set of a
// real job (forged onto a hand-made image) is never deleted: the store
// records another image as the job's copy. The real copy is pruned and
// its job becomes PRUNED.
func TestGuardRefusesForgedImage(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{})
	j := newJob(0, 10, "cn-shanghai")
	h.submit(j)
	h.runUntil("done", 30*time.Second, 100, h.allTerminal([]string{j.ID}))
	done := h.job(j.ID)
	if done.State != job.StateSucceeded {
		t.Fatalf("job = %s", done.State)
	}
	real := h.copiesIn("cn-shanghai")[0]
	forged := ecsemu.FixtureImage{Region: "cn-shanghai", ID: "m-forged00000000000000", Name: "hand-made", SizeGiB: 10,
		Status: cloud.StatusAvailable, Tags: real.Tags}
	if err := h.emu.AddImage(forged); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err := h.s.Prune(ctx, j.ID, forged.ID, "test", nil, true)
	if !errors.Is(err, errNotOurs) {
		t.Fatalf("prune of the forged image: %v, want a refusal", err)
	}
	if !h.imageExists("cn-shanghai", forged.ID) || h.job(j.ID).State != job.StateSucceeded {
		t.Fatal("the forged image was deleted, or the job changed")
	}
	if err := h.s.Prune(ctx, "j-unknown", forged.ID, "test", nil, true); err == nil {
		t.Fatal("prune with an unknown job succeeded")
	}
	if err := h.s.Prune(ctx, j.ID, real.ID, "retention keeps 1", nil, false); err != nil {
		t.Fatal(err)
	}
	if h.imageExists("cn-shanghai", real.ID) || !h.imageExists("cn-shanghai", forged.ID) {
		t.Fatal("the real copy is still there, or the forged one is gone")
	}
	if got := h.job(j.ID); got.State != job.StatePruned || got.PruneReason != "retention keeps 1" || got.FinishTime.IsZero() {
		t.Fatalf("job = %s %q, want PRUNED with the reason", got.State, got.PruneReason)
	}
}

// TestAdoptOnlyOwnAndNeverTouch: a new state file adopts only the copies
// with this installation's owner tag, says so on the job, and never
// deletes, cancels or modifies them unless allowed.
func TestAdoptOnlyOwnAndNeverTouch(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{Owner: "team-a"})
	lineage := func(id, owner string) map[string]string {
		t := map[string]string{job.TagJobID: id, job.TagSourceImage: imageID(0), job.TagSourceRegion: srcRegion, job.TagAttempt: "1"}
		if owner != "" {
			t[job.TagOwner] = owner
		}
		return t
	}
	mine, theirs, legacy := job.NewID(epoch), job.NewID(epoch), job.NewID(epoch)
	for i, p := range []struct{ id, owner, status string }{
		{mine, "team-a", cloud.StatusAvailable}, {theirs, "team-b", cloud.StatusAvailable}, {legacy, "", cloud.StatusCreating},
	} {
		if err := h.emu.AddImage(ecsemu.FixtureImage{Region: "cn-shanghai", ID: "m-planted" + strconv.Itoa(i) + "000000000000", Name: "planted-" + strconv.Itoa(i),
			SizeGiB: 10, Status: p.status, Tags: lineage(p.id, p.owner)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := h.s.Adopt(context.Background(), []string{"cn-shanghai"})
	if err != nil || n != 1 {
		t.Fatalf("adopted %d, %v; want only team-a's copy", n, err)
	}
	a := h.job(mine)
	if !a.Adopted || a.AdoptionReason == "" || a.State != job.StateSucceeded {
		t.Fatalf("adopted job = %+v", a)
	}
	for _, id := range []string{theirs, legacy} {
		if _, err := h.store.Get(context.Background(), id); err == nil {
			t.Errorf("job %s (another owner or no owner tag) was adopted", id)
		}
	}
	if err := h.s.Prune(context.Background(), mine, a.DestinationImageID, "retention", nil, false); !errors.Is(err, errNotOurs) {
		t.Fatalf("prune of an adopted copy without prune_adopted: %v", err)
	}
	if !h.imageExists("cn-shanghai", a.DestinationImageID) {
		t.Fatal("the adopted copy was deleted")
	}
	if err := h.s.Prune(context.Background(), mine, a.DestinationImageID, "retention", nil, true); err != nil {
		t.Fatalf("prune with prune_adopted: %v", err)
	}
	if h.imageExists("cn-shanghai", a.DestinationImageID) || h.job(mine).State != job.StatePruned {
		t.Fatal("with prune_adopted the adopted copy should be gone and its job PRUNED")
	}
}

// TestCancelAdoptedLeavesCopy: cancelling an adopted copy that is still
// Creating stops following it and leaves it in ECS (it is not proven ours).
func TestCancelAdoptedLeavesCopy(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{})
	id := job.NewID(epoch)
	planted := ecsemu.FixtureImage{Region: "cn-shanghai", ID: "m-planted0000000000000", Name: "planted", SizeGiB: 10, Status: cloud.StatusCreating,
		Tags: map[string]string{job.TagJobID: id, job.TagSourceImage: imageID(0), job.TagSourceRegion: srcRegion, job.TagAttempt: "1", job.TagOwner: job.DefaultOwner}}
	if err := h.emu.AddImage(planted); err != nil {
		t.Fatal(err)
	}
	if n, err := h.s.Adopt(context.Background(), []string{"cn-shanghai"}); err != nil || n != 1 {
		t.Fatalf("adopted %d, %v", n, err)
	}
	if _, err := h.s.Cancel(context.Background(), []string{id}); err != nil {
		t.Fatal(err)
	}
	h.runUntil("cancelled", time.Second, 30, h.allTerminal([]string{id}))
	if got := h.job(id); got.State != job.StateCancelled || got.Error == nil || got.Error.Code != "AdoptedCopyKept" {
		t.Fatalf("job = %s %+v", got.State, got.Error)
	}
	if !h.imageExists("cn-shanghai", planted.ID) {
		t.Fatal("the adopted, hand-made image was removed by a cancel")
	}
	if c := h.emu.Stats().Calls; sum(c["DeleteImage"])+sum(c["CancelCopyImage"]) != 0 {
		t.Fatalf("destructive calls sent: %v %v", c["DeleteImage"], c["CancelCopyImage"])
	}
}

// TestRetryFindsEarlierCopy: a job that failed without a recorded copy
// (its CopyImage answer was lost) may have left one in ECS; a retry finds
// it by the job's own lineage and follows it instead of making a second.
func TestRetryFindsEarlierCopy(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{})
	j := newJob(0, 10, "cn-shanghai")
	j.State, j.Attempts, j.ClientToken = job.StateFailed, 1, job.Token(j.ID, 1)
	j.Error = &job.Error{Code: "SDK.TimeoutError", Message: "timed out"}
	h.submit(j)
	id, err := h.cloud.CopyImage(context.Background(), cloud.CopyRequest{SourceRegion: srcRegion, SourceImageID: j.SourceImageID,
		DestinationRegion: j.DestinationRegion, Tags: lineageTags(j, job.DefaultOwner), ClientToken: "lost-answer"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Retry(context.Background(), []string{j.ID}); err != nil {
		t.Fatal(err)
	}
	h.runUntil("done", 30*time.Second, 100, h.allTerminal([]string{j.ID}))
	got := h.job(j.ID)
	if got.State != job.StateSucceeded || got.DestinationImageID != id {
		t.Fatalf("job = %s copy %s, want SUCCEEDED following the earlier copy %s", got.State, got.DestinationImageID, id)
	}
	if n := len(h.copiesIn("cn-shanghai")); n != 1 {
		t.Fatalf("%d copies, want 1", n)
	}
}

// TestFailingJobRemovesItsCopy: a job that fails after its copy exists
// (a post-copy action refused for good) removes the copy first: no job
// ends FAILED with its copy in ECS.
func TestFailingJobRemovesItsCopy(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10)}, Options{})
	j := newJob(0, 10, "cn-shanghai")
	for i := 0; i < 51; i++ { // ECS shares an image with at most 50 accounts
		j.ShareAccounts = append(j.ShareAccounts, strconv.Itoa(100000000000+i))
	}
	h.submit(j)
	h.runUntil("done", 30*time.Second, 200, h.allTerminal([]string{j.ID}))
	got := h.job(j.ID)
	if got.State != job.StateFailed || got.Error == nil {
		t.Fatalf("job = %s %+v, want FAILED", got.State, got.Error)
	}
	if got.DestinationImageID == "" || h.imageExists("cn-shanghai", got.DestinationImageID) {
		t.Fatalf("job FAILED (%s) with its copy %q still in ECS", got.Error.Code, got.DestinationImageID)
	}
}

// TestCancelTombstoneAndLift: cancelling a policy job stops SubmitPolicy
// for its pair (and only its pair); LiftCancels with the image named lifts
// it, and the pair can be copied again.
func TestCancelTombstoneAndLift(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10, 10)}, Options{SlotsPerRegion: 1})
	blocker := newJob(1, 10, "cn-shanghai") // keeps the only slot busy
	j := newJob(0, 10, "cn-shanghai")
	j.Policy = "p"
	h.submit(blocker, j)
	ctx := context.Background()
	if _, err := h.s.Cancel(job.WithActor(ctx, "api (test)"), []string{j.ID}); err != nil {
		t.Fatal(err)
	}
	if got := h.job(j.ID); got.State != job.StateCancelled || got.CancelledBy != "api (test)" || got.CancelTime.IsZero() {
		t.Fatalf("cancelled job = %s by %q at %s", got.State, got.CancelledBy, got.CancelTime)
	}
	again, other := newJob(0, 10, "cn-shanghai"), newJob(0, 10, "cn-beijing")
	again.Policy, other.Policy = "p", "p"
	skipped, err := h.s.SubmitPolicy(ctx, again, other)
	if err != nil || len(skipped) != 1 || skipped[0].JobID != j.ID || skipped[0].By != "api (test)" {
		t.Fatalf("SubmitPolicy: skipped %+v, %v", skipped, err)
	}
	if _, err := h.store.Get(ctx, again.ID); err == nil {
		t.Fatal("a job of the cancelled pair was created")
	}
	if _, err := h.store.Get(ctx, other.ID); err != nil {
		t.Fatalf("the other pair's job: %v", err)
	}
	if n, err := h.s.LiftCancels(ctx, "p", []string{imageID(1)}, "test"); err != nil || n != 0 {
		t.Fatalf("lift of another image: %d, %v", n, err)
	}
	if n, err := h.s.LiftCancels(ctx, "p", []string{imageID(0)}, "policy p changed"); err != nil || n != 1 {
		t.Fatalf("lift: %d, %v", n, err)
	}
	third := newJob(0, 10, "cn-shanghai")
	third.Policy = "p"
	if skipped, err := h.s.SubmitPolicy(ctx, third); err != nil || len(skipped) != 0 {
		t.Fatalf("after the lift: skipped %+v, %v", skipped, err)
	}
	if got := h.job(j.ID); got.State != job.StateCancelled || got.CancelLifted != "policy p changed" {
		t.Fatalf("the cancelled job after the lift: %s %q", got.State, got.CancelLifted)
	}
}

// A copy that ECS made but the daemon never heard of (CopyImage's answer
// lost) and that then ended CreateFailed is still an image in ECS: the
// recovery lookup must find it by its lineage, so that a cancel removes
// it instead of ending CANCELLED beside it (a soak run found one).
func TestRecoveryFindsCreateFailedCopy(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(10), CreateFailedRate: 1}, Options{})
	h.close()
	j := newJob(0, 10, "cn-shanghai")
	j.State = job.StateSubmitting
	j.Attempts = 1
	j.ClientToken = job.Token(j.ID, 1)
	j.CreateTime = epoch
	j.CancelRequested = true
	store := reopen(t, h)
	if err := store.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	store.Close()
	if _, err := h.cloud.CopyImage(context.Background(), cloud.CopyRequest{
		SourceRegion: srcRegion, SourceImageID: j.SourceImageID, DestinationRegion: j.DestinationRegion,
		Tags: lineageTags(j, job.DefaultOwner), ClientToken: j.ClientToken,
	}); err != nil {
		t.Fatal(err)
	}
	// The scheduler is down: only the (fake) clock moves the copy on.
	for i := 0; ; i++ {
		c := h.copiesIn("cn-shanghai")
		if len(c) == 1 && c[0].Status == cloud.StatusCreateFailed {
			break
		}
		if i == 200 {
			t.Fatalf("copy not CreateFailed after 200 minutes: %+v", c)
		}
		h.clk.Step(time.Minute)
	}

	h.open(Options{})
	h.runUntil("done", 30*time.Second, 200, h.allTerminal([]string{j.ID}))
	if got := h.job(j.ID); got.State != job.StateCancelled {
		t.Fatalf("job = %s, want CANCELLED", got.State)
	}
	if c := h.copiesIn("cn-shanghai"); len(c) != 0 {
		t.Fatalf("CANCELLED job left %d images in ECS: %+v", len(c), c)
	}
}
