package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/job"
)

// replctl's copy of the extrapolation (it speaks only the API) gives what
// the daemon's job.EstimateProgress gives, over a grid of reports.
func TestExtrapolateMatchesJob(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for p := int32(-1); p <= 100; p += 3 {
		for _, r := range []time.Duration{-time.Second, 0, time.Second, 97 * time.Second, 10 * time.Minute, 7 * time.Hour} {
			for _, e := range []time.Duration{-time.Minute, 0, time.Millisecond, time.Second, 45 * time.Second, 9 * time.Minute, 3 * time.Hour} {
				j := &job.Job{State: job.StateCopying, ProgressPercent: p, Remaining: r, ProgressTime: at}
				wp, wl, we := j.EstimateProgress(at.Add(e))
				gp, gl, ge := extrapolate(p, r, e)
				if gp != wp || gl != wl || ge != we {
					t.Fatalf("p=%d r=%v elapsed %v: replctl %d %v %v, daemon %d %v %v", p, r, e, gp, gl, ge, wp, wl, we)
				}
			}
		}
	}
}

// reported is a COPYING job as the daemon answers it: ECS reported
// observed% with left to go at reportedAt, and the daemon extrapolated
// over sinceReport (its clock) before sending it.
func reported(observed int32, left time.Duration, reportedAt time.Time, sinceReport time.Duration) *replicatorv1.Job {
	j := sampleJob("j-0001", "cn-shanghai", stCopying, 0)
	p, l, est := extrapolate(observed, left, sinceReport)
	j.ProgressPercent, j.Remaining, j.ProgressEstimated = p, durationpb.New(l), est
	j.ObservedProgressPercent, j.ObservedRemaining = observed, durationpb.New(left)
	j.ProgressTime = timestamppb.New(reportedAt)
	j.UpdateTime = j.ProgressTime
	return j
}

// liveRig is a live sink on a fake clock whose frames go through the
// terminal emulator.
type liveRig struct {
	t   *testing.T
	now time.Time
	out bytes.Buffer
	tr  *tracker
	s   *liveSink
}

func newLiveRig(t *testing.T) *liveRig {
	r := &liveRig{t: t, now: testNow, tr: newTracker()}
	r.s = &liveSink{tr: r.tr, screen: &liveScreen{w: &r.out}, now: func() time.Time { return r.now },
		term: func() termInfo { return termInfo{tty: true, width: 100, height: 30} }}
	return r
}

// event delivers j as a Watch event at the current time.
func (r *liveRig) event(j *replicatorv1.Job) {
	r.t.Helper()
	r.tr.update(j, r.now)
	if err := r.s.message(nil, j); err != nil {
		r.t.Fatal(err)
	}
	r.tick(0)
}

// tick advances the clock by d and lets the sink redraw.
func (r *liveRig) tick(d time.Duration) {
	r.t.Helper()
	r.now = r.now.Add(d)
	if err := r.s.tick(); err != nil {
		r.t.Fatal(err)
	}
}

// line returns the screen's line of the job to cn-shanghai.
func (r *liveRig) line() string {
	r.t.Helper()
	vt := newVTScreen()
	vt.feed(r.t, r.out.String())
	for _, l := range strings.Split(vt.text(), "\n") {
		if strings.Contains(l, "cn-shanghai") {
			return l
		}
	}
	r.t.Fatalf("no cn-shanghai line on screen:\n%s", vt.text())
	return ""
}

func (r *liveRig) want(what string, parts ...string) {
	r.t.Helper()
	l := r.line()
	for _, p := range parts {
		if !strings.Contains(l, p) {
			r.t.Errorf("%s: line %q lacks %q", what, l, p)
		}
	}
}

func bars(l string) int { return strings.Count(l, "█") }

// Between the daemon's reports the live view moves each COPYING bar and
// counts its ETA down every second, from the last event alone; the next
// report corrects it without moving the bar back, unless ECS's own figure
// went down.
func TestLiveViewMovesBetweenEvents(t *testing.T) {
	r := newLiveRig(t)
	// The daemon's clock is an hour off replctl's: nothing compares them.
	reportAt := testNow.Add(-time.Hour)
	r.event(reported(40, 10*time.Minute, reportAt, time.Minute))
	r.want("as received", "~46%", "ETA 9m00s")
	first := bars(r.line())

	r.tick(time.Second)
	r.want("a second later, no event", "ETA 8m59s")
	r.tick(29 * time.Second)
	r.want("30s later, no event", "~49%", "ETA 8m30s")
	r.tick(30 * time.Second)
	r.want("60s later, no event", "~52%", "ETA 8m00s")
	if b := bars(r.line()); b <= first {
		t.Errorf("bar did not grow without an event: %d cells, then %d", first, b)
	}

	// The next poll: ECS says 50%, below the 52% on screen, with 9m left.
	// The ETA takes ECS's word; the bar holds until the estimate passes it.
	r.event(reported(50, 9*time.Minute, reportAt.Add(2*time.Minute), 0))
	r.want("corrected below the screen", "~52%", "ETA 9m00s")
	r.tick(10 * time.Second) // 50 + 50*10/540 = 50.9: still held
	r.want("held", "~52%", "ETA 8m50s")
	r.tick(60 * time.Second) // 50 + 50*70/540 = 56.4
	r.want("passed the hold", "~56%", "ETA 7m50s")

	// A new attempt starts from its own figures, even above the last
	// ECS figure of the old one.
	next := reported(51, 20*time.Minute, reportAt.Add(3*time.Minute), 0)
	next.Attempts = 2
	r.event(next)
	r.want("new attempt", " 51%", "ETA 20m")
	r.tick(5 * time.Second)

	// ECS's own figure goes down (the copy started over): so does the bar.
	back := reported(10, 20*time.Minute, reportAt.Add(5*time.Minute), 0)
	back.Attempts = 2
	r.event(back)
	r.want("ECS went back", " 10%", "ETA 20m")

	// At the end of its time left the estimate stops at 99%, any moment.
	r.tick(25 * time.Minute)
	r.want("time up", "~99%", "ETA 0s")
	if l := r.line(); strings.Contains(l, "100%") {
		t.Errorf("100%% before ECS said so: %q", l)
	}

	// Available: ECS's values again, unmarked.
	done := proto.Clone(r.tr.jobs["j-0001"].job).(*replicatorv1.Job)
	done.State, done.ProgressPercent, done.ProgressEstimated, done.ObservedProgressPercent = stCopying, 100, false, 100
	done.CloudStatus, done.Remaining, done.ObservedRemaining = "Available", nil, nil
	r.event(done)
	r.want("available", "100%")
}

// A job from a daemon without the observed fields shows what it sent, as
// before; the ETA still counts down from replctl's own rate estimate.
func TestLiveViewOlderDaemon(t *testing.T) {
	r := newLiveRig(t)
	j := sampleJob("j-0001", "cn-shanghai", stCopying, 45)
	r.event(j)
	r.want("as received", " 45%", "ETA 7m00s")
	r.tick(time.Minute)
	r.want("a minute later", " 45%", "ETA 7m00s")
}

// The one-shot outputs mark an estimated percent; plain lines, a log of
// changes, print ECS's figure at TIME; JSON carries every field.
func TestEstimatedPercentInOutputs(t *testing.T) {
	j := reported(40, 10*time.Minute, testNow.Add(-150*time.Second), 150*time.Second)
	var b bytes.Buffer
	if err := writeJobsTable(&b, []*replicatorv1.Job{j}, testNow); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "COPYING  ~55%") {
		t.Errorf("jobs table:\n%s", b.String())
	}
	b.Reset()
	if err := writeJobDetail(&b, j, testNow); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "~55% (estimated; ECS reported 40% at 2026-11-25T16:57:30Z (2m30s ago))") ||
		!strings.Contains(strings.Join(strings.Fields(b.String()), " "), "Remaining: 7m30s") {
		t.Errorf("job detail:\n%s", b.String())
	}
	if l := plainLine(j); !strings.Contains(l, " COPYING 40% ") {
		t.Errorf("plain line %q: want ECS's 40%%", l)
	}
	b.Reset()
	if err := printMessage(&b, "json", j); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"progressPercent":55`, `"progressEstimated":true`, `"observedProgressPercent":40`, `"observedRemaining":"600s"`, `"remaining":"450s"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JSON lacks %s: %s", want, b.String())
		}
	}
	// Not an estimate: no mark.
	j.ProgressEstimated, j.ProgressPercent = false, 40
	b.Reset()
	_ = writeJobsTable(&b, []*replicatorv1.Job{j}, testNow)
	if strings.Contains(b.String(), "~") || !strings.Contains(b.String(), "COPYING  40%") {
		t.Errorf("jobs table of ECS's own figure:\n%s", b.String())
	}
}
