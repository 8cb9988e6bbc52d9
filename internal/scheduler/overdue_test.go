package scheduler

import (
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/job"
)

// A copy far slower than the route's estimate shows up as overdue in its
// region, by how far it has run past its expected end; it stops showing
// once it finished.
func TestOverdueCopy(t *testing.T) {
	// 5 MiB/s: about 205 s per GiB, ten times the estimator's prior.
	h := newHarness(t, ecsemu.Config{Images: images(10), DefaultRateMiBps: 5}, Options{})
	j := newJob(0, 10, "cn-shanghai")
	h.submit(j)
	h.runUntil("copy observed", time.Second, 10, func() bool { return h.job(j.ID).State == job.StateCopying })
	if o := h.s.Overdue(); len(o) != 0 {
		t.Fatalf("overdue right after the copy started: %v", o)
	}
	// The estimate for 10 GiB is 200 s: 20 minutes later the copy is
	// about 1000 s past it (the start may be back-dated by the first
	// poll's progress, so allow for a poll interval).
	h.clk.Step(20 * time.Minute)
	over := h.s.Overdue()["cn-shanghai"]
	if over < 900*time.Second || over > 1100*time.Second {
		t.Fatalf("overdue after 20 min = %s, want about 1000 s", over)
	}
	if _, ok := h.s.Overdue()["ap-northeast-1"]; ok {
		t.Errorf("a region without copies is overdue")
	}
	h.runUntil("copy done", 30*time.Second, 200, h.allTerminal([]string{j.ID}))
	if o := h.s.Overdue(); len(o) != 0 {
		t.Errorf("overdue after the copy finished: %v", o)
	}
}
