package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/job"
)

// TestForecastReplaysECSQueue: running copies end when ECS said, waiting
// ones start first come, first served as slots free, and the dry time is
// when the first slot has nothing left to start.
func TestForecastReplaysECSQueue(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := New(nil, nil, Options{Clock: clk, SlotsPerRegion: 2})
	defer s.Stop(context.Background())
	now := clk.Now()
	gib := func(d time.Duration) int64 { return int64(d / (defaultSecPerGiB * time.Second)) } // the prior's size for d
	add := func(id string, st job.State, status string, remaining time.Duration, size int64, submitted time.Duration) {
		s.live[id] = &job.Job{ID: id, State: st, CloudStatus: status, Remaining: remaining, ProgressTime: now,
			SizeGiB: size, DestinationRegion: "cn-shanghai", SourceRegion: srcRegion, SubmitTime: now.Add(submitted)}
	}
	add("run-a", job.StateCopying, cloud.StatusCreating, 10*time.Minute, 100, -time.Hour)
	add("run-b", job.StateCopying, cloud.StatusCreating, 30*time.Minute, 100, -time.Hour)
	add("wait-2", job.StateWaiting, "", 0, gib(20*time.Minute), -time.Minute)   // accepted second
	add("wait-1", job.StateWaiting, "", 0, gib(15*time.Minute), -2*time.Minute) // accepted first
	add("other", job.StateCopying, cloud.StatusCreating, time.Minute, 10, -time.Hour)
	s.live["other"].DestinationRegion = "cn-beijing"

	f := s.regionForecast("cn-shanghai", now)
	if len(f.queue) != 2 || f.queue[0].j.ID != "wait-1" || f.queue[1].j.ID != "wait-2" {
		t.Fatalf("queue = %+v, want wait-1 then wait-2 (ECS's order)", f.queue)
	}
	// wait-1 takes run-a's slot at 10m and ends at 25m; wait-2 takes that
	// slot again at 25m (run-b's frees at 30m) and ends at 45m.
	want := []time.Duration{10 * time.Minute, 25 * time.Minute, 30 * time.Minute, 45 * time.Minute}
	if len(f.ends) != len(want) {
		t.Fatalf("ends = %v, want %v", f.ends, want)
	}
	for i, w := range want {
		if got := f.ends[i].Sub(now); got != w {
			t.Errorf("end %d = %s, want %s", i, got, w)
		}
	}
	if got := f.queue[1].start.Sub(now); got != 25*time.Minute {
		t.Errorf("wait-2 starts at %s, want 25m", got)
	}
	if got := f.dry.Sub(now); got != 30*time.Minute {
		t.Errorf("dry at %s, want 30m (run-b's slot has nothing left)", got)
	}
	// A region with a free slot is dry now.
	delete(s.live, "run-b")
	delete(s.live, "wait-1")
	delete(s.live, "wait-2")
	if f := s.regionForecast("cn-shanghai", now); !f.dry.Equal(now) {
		t.Errorf("with a slot free, dry at %s, want now", f.dry.Sub(now))
	}
}

// gatedDescribe holds DescribeImages calls while held is set, telling
// entered when one arrives.
type gatedDescribe struct {
	cloud.Provider
	mu      sync.Mutex
	hold    bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedDescribe) DescribeImages(ctx context.Context, q cloud.ImageQuery) ([]cloud.Image, error) {
	g.mu.Lock()
	hold := g.hold
	g.hold = false
	g.mu.Unlock()
	if hold {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Provider.DescribeImages(ctx, q)
}

// TestCopyAcceptedDuringPollIsPolled is the regression test of the
// poll-pending bug: a copy accepted while its region's poll is in flight
// used to wait for poll_max, because the running poll counted as the
// pending one and planned its successor from the copies it had taken.
// The copy must be seen done soon after it ends, long before the other
// copy of the region (an hour) ends or poll_max (two hours) passes.
func TestCopyAcceptedDuringPollIsPolled(t *testing.T) {
	g := &gatedDescribe{entered: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t, ecsemu.Config{Images: images(180, 20)}, Options{SlotsPerRegion: 5, PollMax: 2 * time.Hour}, func(h *harness) {
		h.wrap = func(p cloud.Provider) cloud.Provider { g.Provider = p; return g }
	})
	long, short := newJob(0, 180, "cn-shanghai"), newJob(1, 20, "cn-shanghai")
	g.mu.Lock()
	g.hold = true
	g.mu.Unlock()
	h.submit(long)
	// The first copy starts at once on a route with no history, so a poll
	// comes within PollMin; it is held in flight.
	h.waitFor("the first copy accepted", func() bool { return h.job(long.ID).State == job.StateWaiting })
	h.settle()
	h.clk.Step(time.Second) // PollMin
	select {
	case <-g.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no poll within PollMin of the first copy")
	}
	if err := h.s.Submit(context.Background(), short); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the second copy accepted while the poll runs", func() bool { return h.job(short.ID).State == job.StateWaiting })
	close(g.release)
	// The short copy takes 20 GiB at 50 MiB/s: under 7 minutes.
	h.runUntil("the short copy seen done", 30*time.Second, 30, func() bool { return h.job(short.ID).State == job.StateSucceeded })
	if st := h.job(long.ID).State; st != job.StateCopying {
		t.Fatalf("the long copy is %s, want still COPYING (the short one must not wait for it)", st)
	}
	if waited := h.clk.Now().Sub(epoch); waited > 15*time.Minute {
		t.Fatalf("the short copy was seen done after %s", waited)
	}
}

// TestLookaheadInTime: beyond the slots, a copy is submitted only once it
// is expected to wait at ECS no longer than LookaheadTime; the scheduler
// finds that moment from its forecast, without a poll.
func TestLookaheadInTime(t *testing.T) {
	h := newHarness(t, ecsemu.Config{Images: images(40, 40, 40, 40, 40, 40), CopySlotsPerRegion: 2},
		Options{SlotsPerRegion: 2, Lookahead: 10, LookaheadTime: 10 * time.Minute, DetectLag: 5 * time.Minute, PollMax: 2 * time.Hour})
	var jobs []*job.Job
	for i := 0; i < 6; i++ {
		jobs = append(jobs, newJob(i, 40, "cn-shanghai"))
	}
	h.submit(jobs...)
	inECS := func() int { // from the emulator's books: no API call to count
		n := 0
		for _, c := range h.emu.Stats().Copies["cn-shanghai"] {
			n += c
		}
		return n
	}
	// 40 GiB copies take about 14 minutes: the slots' first ends are more
	// than LookaheadTime away, so ECS holds the two running ones and,
	// before any copy ended in the region, one spare Waiting.
	h.runUntil("the slots filled", time.Second, 5, func() bool { return h.states(ids(jobs))[job.StateCopying] == 2 })
	if n := inECS(); n != 3 {
		t.Fatalf("ECS holds %d copies at the start, want 3 (two running, one spare; no more may wait over 10m)", n)
	}
	polls := h.emu.Stats().Calls["DescribeImages"]["200"]
	// Five minutes in, the first ends are 9 minutes away: copies to take
	// the slots then are submitted, with no poll needed to decide it.
	h.runUntil("the look-ahead submitted", 30*time.Second, 12, func() bool { return inECS() > 3 })
	if got := h.emu.Stats().Calls["DescribeImages"]["200"]; got != polls {
		t.Errorf("%d polls to decide the look-ahead, want none", got-polls)
	}
	if at := h.clk.Now().Sub(epoch); at < 3*time.Minute {
		t.Errorf("look-ahead submitted at %s, want only once the wait is under 10m (about 4m)", at)
	}
	h.runUntil("all copies done", time.Minute, 120, h.allTerminal(ids(jobs)))
	if st := h.states(ids(jobs)); st[job.StateSucceeded] != 6 {
		t.Fatalf("states = %v, want 6 SUCCEEDED", st)
	}
	if n := inECS(); n != 6 {
		t.Fatalf("ECS holds %d copies, want exactly 6", n)
	}
}

// TestForecastBacksOffOverdueCopy: a copy past its expected end is
// expected again after half its overrun (at least PollMin), so polls for
// a stuck copy back off instead of coming every PollMin.
func TestForecastBacksOffOverdueCopy(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := New(nil, nil, Options{Clock: clk, SlotsPerRegion: 1, PollMin: time.Second})
	defer s.Stop(context.Background())
	now := clk.Now()
	s.live["stuck"] = &job.Job{ID: "stuck", State: job.StateCopying, CloudStatus: cloud.StatusCreating, DestinationRegion: "cn-shanghai",
		SourceRegion: srcRegion, SizeGiB: 10, Remaining: time.Minute, ProgressTime: now.Add(-11 * time.Minute)}
	f := s.regionForecast("cn-shanghai", now)
	if got := f.ends[0].Sub(now); got != 5*time.Minute {
		t.Errorf("10m overdue: expected in %s, want 5m", got)
	}
	at, ok := s.planPoll("cn-shanghai", f, false)
	if !ok || at.Sub(now) < 5*time.Minute {
		t.Errorf("next poll in %s (%v), want after the backed-off end", at.Sub(now), ok)
	}
	s.live["stuck"].ProgressTime = now.Add(-time.Minute) // just due
	if got := s.regionForecast("cn-shanghai", now).ends[0].Sub(now); got != time.Second {
		t.Errorf("just due: expected in %s, want PollMin (1s)", got)
	}
}

// TestLookaheadAndPollPlan: admission keeps LookaheadTime of work Waiting
// at ECS from the forecast alone (a timer, not a poll, tops it up), and a
// poll comes a tenth of the detection lag after the last end expected
// before its limit, so that it sees a cluster of ends whole. A copy that
// ends CreateFailed frees its slot early, so ECS starts the next Waiting
// copy sooner than the forecast says: a region whose copies fail holds a
// spare Waiting copy per expected failure beyond LookaheadTime's work, and
// is looked at before its queue runs dry, by a quarter of LookaheadTime or
// half the time left.
func TestLookaheadAndPollPlan(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := New(nil, nil, Options{Clock: clk, SlotsPerRegion: 2, PollMin: time.Second, DetectLag: 15 * time.Minute,
		LookaheadTime: 2 * time.Hour, PollMax: time.Hour})
	defer s.Stop(context.Background())
	now := clk.Now()
	const region = "cn-shanghai"
	// Two running copies end at 10m and 12m; four Waiting ones of 10m
	// each start at 10m, 12m, 20m and 22m and end at 20m, 22m, 30m and
	// 32m: ECS's queue runs dry at 30m.
	for i, left := range []time.Duration{10 * time.Minute, 12 * time.Minute} {
		id := fmt.Sprintf("run%d", i)
		s.live[id] = &job.Job{ID: id, State: job.StateCopying, CloudStatus: cloud.StatusCreating, DestinationRegion: region,
			SourceRegion: srcRegion, SizeGiB: 30, Remaining: left, ProgressTime: now}
	}
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("wait%d", i)
		s.live[id] = &job.Job{ID: id, State: job.StateWaiting, CloudStatus: cloud.StatusWaiting, DestinationRegion: region,
			SourceRegion: srcRegion, SizeGiB: 30, SubmitTime: now.Add(time.Duration(i) * time.Second)}
	}
	cand := &job.Job{ID: "next", State: job.StateQueued, DestinationRegion: region, SourceRegion: srcRegion, SizeGiB: 30}
	nextPoll := func(lag time.Duration) time.Duration {
		s.opts.DetectLag = lag
		defer func() { s.opts.DetectLag = 15 * time.Minute }()
		at, ok := s.planPoll(region, s.regionForecast(region, now), true)
		if !ok {
			t.Fatal("no poll planned with copies in ECS")
		}
		return at.Sub(now)
	}
	// The same with nothing queued here.
	lastPoll := func() time.Duration {
		at, ok := s.planPoll(region, s.regionForecast(region, now), false)
		if !ok {
			t.Fatal("no poll planned with copies in ECS")
		}
		return at.Sub(now)
	}

	// Admission: the queue runs dry within the 2h look-ahead, so the
	// candidate goes in. With a 20m look-ahead, before ten copies ended
	// here, one spare Waiting copy is kept beyond the look-ahead's work
	// (the copy that starts at 22m), enough until 2m, when it comes
	// within 20m; from the tenth end with no failure there is none, and
	// the candidate waits here until 10m. Either way admission says
	// when, for a timer.
	if _, more, _ := s.wantMore(region, now, cand); !more {
		t.Error("queue dry in 30m, look-ahead 2h: admission does not want the candidate")
	}
	s.opts.LookaheadTime = 20 * time.Minute
	wake := func(what string, want time.Duration) {
		t.Helper()
		if _, more, at := s.wantMore(region, now, cand); more || at.Sub(now) != want {
			t.Errorf("queue dry in 30m, look-ahead 20m, %s: more %t, wake in %s; want false, %s", what, more, at.Sub(now), want)
		}
	}
	wake("no end yet, a spare", 2*time.Minute)
	for i := 0; i < priorEnds-1; i++ {
		s.est.observeOutcome(region, false)
	}
	wake("nine ends, still a spare", 2*time.Minute)
	s.est.observeOutcome(region, false)
	wake("ten ends, no failure, no spare", 10*time.Minute)
	s.opts.LookaheadTime = 2 * time.Hour

	// The poll plan, no failures. A 15m lag: the first end (10m) is to be
	// seen by 23m7.5s (seven eighths of the lag after it). A 30m lag: by
	// 36m15s, but ECS already holds Lookahead (0 here) copies beyond the
	// slots, admission cannot top its queue up, and the poll comes no
	// later than it runs dry, at 30m.
	if got := nextPoll(15 * time.Minute); got != 23*time.Minute+7500*time.Millisecond {
		t.Errorf("no failures, 15m lag: next poll in %s, want 23m7.5s", got)
	}
	if got := nextPoll(30 * time.Minute); got != 30*time.Minute {
		t.Errorf("no failures, 30m lag, look-ahead full: next poll in %s, want 30m (the queue runs dry)", got)
	}
	// With room in the look-ahead, admission's timer tops the queue up
	// before it runs dry, so the dry time does not bind, and with copies
	// still queued here the poll comes at the lag's limit, 36m15s: it
	// sees every end up to then (30m and 32m too), where one a tenth of
	// the lag after the last end within it (35m) would leave the ends
	// due after 35m to a poll of their own. Bound to 30m, it would see
	// the end at 30m, not the one at 32m, and stay there after the
	// top-up (a plan only moves a poll earlier).
	s.opts.Lookahead = 30
	if got := nextPoll(30 * time.Minute); got != 36*time.Minute+15*time.Second {
		t.Errorf("no failures, 30m lag, room in the look-ahead: next poll in %s, want 36m15s", got)
	}
	s.opts.Lookahead = 0
	// Nothing queued here, four Waiting at ECS: the region's last copies
	// are near, so the poll comes a tenth of the lag after the last end
	// within the limit, but not after the limit: 22m + 1m30s is past
	// 23m7.5s, so at 23m7.5s; with a 30m lag, 3m after the end at 32m.
	if got := lastPoll(); got != 23*time.Minute+7500*time.Millisecond {
		t.Errorf("nothing queued, copies Waiting: next poll in %s, want 23m7.5s", got)
	}
	s.opts.DetectLag = 30 * time.Minute
	if got := lastPoll(); got != 35*time.Minute {
		t.Errorf("nothing queued, copies Waiting, 30m lag: next poll in %s, want 35m", got)
	}
	s.opts.DetectLag = 15 * time.Minute
	// The region's last copies (nothing queued, nothing Waiting): the
	// poll comes a tenth of the lag after the last end within the limit
	// (12m, within 23m7.5s of the first), seeing both ends at 10m and
	// 12m with one call; the end at 30m is beyond the limit and gets the
	// next. So each poll's last end, and the region's last copy, is seen
	// a tenth of the lag after it, which leaves the forecast that much
	// room. (A poll after each end would make one call per end here.)
	last := forecast{now: now, busy: true, inECS: 3, ends: []time.Time{now.Add(10 * time.Minute), now.Add(12 * time.Minute), now.Add(30 * time.Minute)}}
	if at, ok := s.planPoll(region, last, false); !ok || at.Sub(now) != 13*time.Minute+30*time.Second {
		t.Errorf("the region's last copies: next poll in %s (planned %t), want 13m30s", at.Sub(now), ok)
	}
	last = forecast{now: now, busy: true, inECS: 1, ends: []time.Time{now.Add(30 * time.Minute)}}
	if at, ok := s.planPoll(region, last, false); !ok || at.Sub(now) != 31*time.Minute+30*time.Second {
		t.Errorf("the region's last copy: next poll in %s (planned %t), want 31m30s", at.Sub(now), ok)
	}

	// One copy in ten has failed here: of the six in ECS, one is
	// expected to fail. The poll comes half the 30m left before the
	// queue runs dry (a quarter of the look-ahead is more): by 15m, which
	// is 3m after the end at 12m.
	for i := 0; i < 100; i++ {
		s.est.observeOutcome(region, i%10 == 0)
	}
	if got := s.est.failures(region, 6); got != 1 {
		t.Fatalf("expected failures of 6 copies = %d, want 1 (a share of about 0.1)", got)
	}
	// Admission keeps one spare Waiting copy per expected failure beyond
	// the look-ahead's work: with 20m, the copy that starts at 22m is the
	// spare, enough until 2m (when it comes within 20m); with 25m none
	// starts later, and the candidate goes in although the queue runs dry
	// only in 30m.
	s.opts.LookaheadTime = 20 * time.Minute
	if _, more, at := s.wantMore(region, now, cand); more || at.Sub(now) != 2*time.Minute {
		t.Errorf("copies failing, look-ahead 20m, a spare: more %t, wake in %s; want false, 2m", more, at.Sub(now))
	}
	s.opts.LookaheadTime = 25 * time.Minute
	if _, more, _ := s.wantMore(region, now, cand); !more {
		t.Error("copies failing, look-ahead 25m, no spare: admission does not want the candidate")
	}
	s.opts.LookaheadTime = 2 * time.Hour
	if got := nextPoll(30 * time.Minute); got != 15*time.Minute {
		t.Errorf("copies failing: next poll in %s, want 15m", got)
	}
	// Where copies fail, each end is seen at once from the moment
	// nothing is queued here: it may be a failure to copy again.
	if got := lastPoll(); got != 10*time.Minute+time.Second {
		t.Errorf("copies failing, nothing queued: next poll in %s, want 10m1s (just after the first end)", got)
	}
	// Another region with no outcome of its own expects the fleet's
	// share. Once the fleet's copies succeed (60 in cn-shenzhen), that
	// share falls below one in a hundred: cn-beijing expects none, and
	// cn-shanghai, whose own share is higher, still its own.
	if got := s.est.failures("cn-beijing", 6); got != 1 {
		t.Errorf("failures expected in a region with no outcome = %d, want 1 (the fleet's share)", got)
	}
	for i := 0; i < 60; i++ {
		s.est.observeOutcome("cn-shenzhen", false)
	}
	if got := s.est.failures("cn-beijing", 6); got != 0 {
		t.Errorf("failures expected in a region with no outcome, the fleet's copies succeeding = %d, want 0", got)
	}
	if got := s.est.failures(region, 6); got != 1 {
		t.Errorf("failures expected of 6 where one in ten failed, the fleet's copies succeeding = %d, want 1 (the region's own share)", got)
	}
}

// TestEndWindowNarrowsWithEachLook: RemainTime is whole seconds, so each
// reading puts the end in a second; the end lies in every one of them, and
// a poll at the middle that finds the copy still running halves what is
// left. A reading that contradicts them all (ECS revised its plan) starts
// afresh. Time is scaled as in the benchmark: a second is a long time.
func TestEndWindowNarrowsWithEachLook(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := New(nil, nil, Options{Clock: clk})
	defer s.Stop(context.Background())
	j := &job.Job{ID: "j", State: job.StateCopying, CloudStatus: cloud.StatusCreating, SizeGiB: 10,
		SourceRegion: srcRegion, DestinationRegion: "cn-shanghai", SubmitTime: epoch.Add(-time.Minute)}
	creating := func(remain time.Duration) cloud.Image {
		return cloud.Image{Status: cloud.StatusCreating, RemainTime: remain}
	}

	// The copy ends 700 ms from now: ECS says 1 s.
	if got := s.remainingOf(j, creating(time.Second), clk.Now()); got != 500*time.Millisecond {
		t.Fatalf("first look: remaining %s, want 500ms (the middle of the second)", got)
	}
	// 500 ms on it has 200 ms left and ECS still says 1 s: the end is in
	// the second half of the first second.
	clk.Step(500 * time.Millisecond)
	if got := s.remainingOf(j, creating(time.Second), clk.Now()); got != 250*time.Millisecond {
		t.Fatalf("second look: remaining %s, want 250ms (the middle of what both readings allow)", got)
	}
	// ECS now plans 3 s: nothing of the old window is left, the new reading rules.
	clk.Step(300 * time.Millisecond)
	if got := s.remainingOf(j, creating(3*time.Second), clk.Now()); got != 2500*time.Millisecond {
		t.Fatalf("revised plan: remaining %s, want 2.5s", got)
	}
}

// TestFirstLookUnderWayBoundsTheStart: a copy the last poll saw Waiting and
// this one sees under way started in between, so it ends a copy time after
// that (with the learned time's margin), and its start is not put before
// that poll however coarse RemainTime is. Without the bound, 49 % done with
// "1 s" left would date the start most of a second back.
func TestFirstLookUnderWayBoundsTheStart(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := New(nil, nil, Options{Clock: clk})
	defer s.Stop(context.Background())
	j := &job.Job{ID: "j", State: job.StateWaiting, CloudStatus: cloud.StatusWaiting, SizeGiB: 10,
		SourceRegion: srcRegion, DestinationRegion: "cn-shanghai", SubmitTime: epoch.Add(-time.Second), ProgressTime: epoch}
	s.est.observe(j.Route(), j.SizeGiB, 300*time.Millisecond) // the route's copy time: 300 ms

	// 100 ms after the Waiting look it is under way (still starting up: 0 %),
	// ECS says 1 s left. It started after epoch, so it ends in
	// (epoch+270ms, epoch+430ms] (300 ms ±10 %), inside ECS's second.
	clk.Step(100 * time.Millisecond)
	got := s.remainingOf(j, cloud.Image{Status: cloud.StatusCreating, RemainTime: time.Second}, clk.Now())
	if want := 250 * time.Millisecond; got < want-time.Millisecond || got > want+time.Millisecond {
		t.Errorf("remaining %s, want about %s (the middle of what the copy time allows)", got, want)
	}

	// A second copy, first seen 49 % done with "1 s" left.
	k := j.Clone()
	k.ID = "k"
	s.markStarted(k.ID, clk.Now(), 49, time.Second, startedAfter(k))
	if start, _ := s.copyStarted(k.ID); start.Before(epoch) {
		t.Errorf("start %s before the poll that saw it Waiting (%s)", start.Sub(epoch), epoch)
	}
}

// gatedCopy lets the first CopyImage through and holds the others until
// release is closed, telling held about each.
type gatedCopy struct {
	cloud.Provider
	mu      sync.Mutex
	calls   int
	held    chan struct{}
	release chan struct{}
}

func (g *gatedCopy) CopyImage(ctx context.Context, req cloud.CopyRequest) (string, error) {
	g.mu.Lock()
	g.calls++
	first := g.calls == 1
	g.mu.Unlock()
	if !first {
		g.held <- struct{}{}
		select {
		case <-g.release:
		case <-ctx.Done(): // the scheduler stopped: a failed test must not hang
			return "", ctx.Err()
		}
	}
	return g.Provider.CopyImage(ctx, req)
}

// TestStartLookWaitsForCopiesInFlight: the first copies of a region on a
// route with no finished copy are looked at soon, to learn their time
// left, but while copies admitted with them are still being sent the
// look waits for them (within a tenth of LookaheadTime at most); the
// last one accepted brings it to PollMin, and one call sees them all.
// Looking after each, copies accepted a little apart took a poll each.
func TestStartLookWaitsForCopiesInFlight(t *testing.T) {
	g := &gatedCopy{held: make(chan struct{}, 2), release: make(chan struct{})}
	h := newHarness(t, ecsemu.Config{Images: images(100, 100, 100)},
		Options{SlotsPerRegion: 5, PollMin: time.Second, LookaheadTime: 40 * time.Minute, PollMax: 2 * time.Hour}, func(h *harness) {
			h.wrap = func(p cloud.Provider) cloud.Provider { g.Provider = p; return g }
		})
	const region = "cn-shanghai"
	jobs := []*job.Job{newJob(0, 100, region), newJob(1, 100, region), newJob(2, 100, region)}
	h.submit(jobs...)
	<-g.held
	<-g.held
	h.waitFor("one copy accepted, two in flight", func() bool {
		n := 0
		for _, j := range jobs {
			if h.job(j.ID).State == job.StateWaiting {
				n++
			}
		}
		return n == 1
	})
	next := func() time.Duration {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		return h.s.nextPoll[region].Sub(h.clk.Now())
	}
	h.waitFor("a poll planned", func() bool { return next() > 0 })
	if d := next(); d != 4*time.Minute {
		t.Fatalf("with two copies in flight, the first look comes in %s, want 4m (a tenth of LookaheadTime; they make it sooner)", d)
	}
	polls := h.emu.Stats().Calls["DescribeImages"]["200"]
	close(g.release)
	h.waitFor("the look brought to PollMin by the last copy accepted", func() bool { return next() == time.Second })
	h.runUntil("the three copies seen COPYING", time.Second, 5, func() bool { return h.states(ids(jobs))[job.StateCopying] == 3 })
	if got := h.emu.Stats().Calls["DescribeImages"]["200"] - polls; got != 1 {
		t.Errorf("%d polls to see the three copies under way, want 1", got)
	}
}
