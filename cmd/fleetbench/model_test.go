package main

import (
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

func testFleet(sizes ...int64) *fleet {
	f := &fleet{Regions: []string{"cn-shanghai"}, Slots: 2, RateMiBps: 1024, Startup: 10 * time.Second}
	for i, s := range sizes {
		f.Images = append(f.Images, fleetImage{ID: "m-" + string(rune('a'+i)), SizeGiB: s})
	}
	return f
}

func TestDurationMatchesEmulatorFormula(t *testing.T) {
	f := &fleet{RateMiBps: 50, Startup: 30 * time.Second}
	// 100 GiB at 50 MiB/s is 2048 s, plus 30 s start-up.
	if got, want := f.duration(100), 2078*time.Second; got != want {
		t.Fatalf("duration(100 GiB) = %s, want %s", got, want)
	}
}

func TestLowerBound(t *testing.T) {
	// Durations 10+s seconds at 1 GiB/s: 20, 30, 110 s on 2 slots.
	f := testFleet(10, 20, 100)
	if b := f.lowerBound(); b.Makespan != 110*time.Second {
		t.Fatalf("bound = %s, want the longest copy, 110s", b.Makespan)
	}
	f = testFleet(10, 10, 10, 10)
	if b := f.lowerBound(); b.Makespan != 40*time.Second {
		t.Fatalf("bound = %s, want total 80s over 2 slots", b.Makespan)
	}
	// The copy-conflict rule chains one image's copies across regions.
	f = testFleet(10, 10, 10, 10)
	f.Regions = []string{"cn-shanghai", "cn-beijing", "cn-shenzhen"}
	f.CopyConflict = true
	if b := f.lowerBound(); b.Makespan != 60*time.Second || b.Region != "" {
		t.Fatalf("bound = %s (%q), want 3 x 20s from the per-image chain", b.Makespan, b.Region)
	}
}

func TestFleetDeterministicAndInRange(t *testing.T) {
	a, b := newFleet(200, 7), newFleet(200, 7)
	ids := map[string]bool{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("image %d differs between two fleets of one seed: %+v vs %+v", i, a[i], b[i])
		}
		if a[i].SizeGiB < 20 || a[i].SizeGiB > 180 {
			t.Errorf("image %d: %d GiB outside 20..180", i, a[i].SizeGiB)
		}
		if ids[a[i].ID] || len(a[i].ID) != 22 {
			t.Errorf("image %d: id %q duplicate or malformed", i, a[i].ID)
		}
		ids[a[i].ID] = true
	}
	if c := newFleet(200, 8); c[0] == a[0] && c[1] == a[1] {
		t.Error("another seed gave the same fleet")
	}
	f := &fleet{Images: a, Regions: []string{"cn-shanghai"}}
	// The fixtures must load into the emulator: ids and names valid.
	if _, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{"LTAIcheck": "secret"}, Images: f.fixtures()}); err != nil {
		t.Fatal(err)
	}
}

func TestModelFIFOSlots(t *testing.T) {
	f := testFleet(10, 20, 30) // 20 s, 30 s, 40 s
	s := &sim{}
	m := newECSModel(s, f, 1000)
	var cs []*modelCopy
	for _, im := range f.Images {
		c, code := m.copyImage(im, "cn-shanghai")
		if code != codeOK {
			t.Fatalf("CopyImage: %s", code)
		}
		cs = append(cs, c)
	}
	// Two slots: the third copy waits for the first to end at 20 s.
	if cs[2].start != 20*time.Second || cs[2].end != 60*time.Second {
		t.Fatalf("third copy runs %s..%s, want 20s..60s", cs[2].start, cs[2].end)
	}
	if st := cs[2].status(10 * time.Second); st != "Waiting" {
		t.Errorf("status at 10s = %s, want Waiting", st)
	}
	if st := cs[2].status(30 * time.Second); st != "Creating" {
		t.Errorf("status at 30s = %s, want Creating", st)
	}
	if st := cs[2].status(60 * time.Second); st != "Available" {
		t.Errorf("status at 60s = %s, want Available", st)
	}
}

func TestModelThrottlesAndRefills(t *testing.T) {
	f := testFleet(10)
	s := &sim{}
	m := newECSModel(s, f, 60) // 60 per minute: burst 60, one token a second
	c, _ := m.copyImage(f.Images[0], "cn-shanghai")
	ok := 0
	for i := 0; i < 100; i++ {
		if _, good := m.describe(c); good {
			ok++
		}
	}
	if ok != 60 || m.calls["DescribeImages"][codeThrottle] != 40 {
		t.Fatalf("burst of 100 calls: %d answered, %d throttled; want 60 and 40", ok, m.calls["DescribeImages"][codeThrottle])
	}
	s.at(2500*time.Millisecond, func() {
		for i := 0; i < 3; i++ {
			if _, good := m.describe(c); !good {
				if i < 2 {
					t.Errorf("call %d after 2.5 s refused; two tokens should have refilled", i)
				}
				return
			}
		}
		t.Error("three calls after 2.5 s answered; only two tokens refilled")
	})
	s.run()
	// CopyImage has its own bucket.
	if _, code := m.copyImage(f.Images[0], "cn-shanghai"); code != codeOK {
		t.Errorf("CopyImage after DescribeImages ran dry: %s, want its own bucket", code)
	}
}

func TestModelCopyConflict(t *testing.T) {
	f := testFleet(10)
	f.CopyConflict = true
	s := &sim{}
	m := newECSModel(s, f, 1000)
	if _, code := m.copyImage(f.Images[0], "cn-shanghai"); code != codeOK {
		t.Fatal(code)
	}
	if _, code := m.copyImage(f.Images[0], "cn-beijing"); code != codeConflict {
		t.Fatalf("second concurrent copy of one source: %s, want %s", code, codeConflict)
	}
}

func TestTerraformPollSchedule(t *testing.T) {
	// One copy of 100 s (90 GiB at 1 GiB/s + 10 s): polls at 60, 63, 69,
	// 79, 89, 99, 109 s; the one at 109 s sees it Available.
	f := testFleet(90)
	r := runTerraform(f, defaultTerraform, 1000)
	if r.Succeeded != 1 || r.Makespan != 109*time.Second {
		t.Fatalf("succeeded %d at %s, want 1 at 109s", r.Succeeded, r.Makespan)
	}
	if n := r.Calls["DescribeImages"][codeOK]; n != 7 {
		t.Errorf("%d polls, want 7", n)
	}
}

func TestTerraformTimesOutWithoutCancelling(t *testing.T) {
	f := testFleet(10, 700) // 20 s and 710 s; the timeout is 600 s
	r := runTerraform(f, defaultTerraform, 1000)
	if r.Succeeded != 1 || r.FailedTimeout != 1 {
		t.Fatalf("succeeded %d, timed out %d; want 1 and 1", r.Succeeded, r.FailedTimeout)
	}
	if r.Makespan != 600*time.Second || r.ECSDone != 710*time.Second {
		t.Errorf("tool done at %s, ECS at %s; want 600s and 710s (the copy keeps running)", r.Makespan, r.ECSDone)
	}
}

func TestTerraformParallelism(t *testing.T) {
	// 20 copies of 20 s into one region with 30 slots: at most 10 at once,
	// so the second ten start when the first ten were seen done (60 s).
	f := testFleet()
	f.Slots = 30
	for i := 0; i < 20; i++ {
		f.Images = append(f.Images, fleetImage{ID: "m-" + string(rune('a'+i)), SizeGiB: 10})
	}
	r := runTerraform(f, defaultTerraform, 1000)
	if r.Succeeded != 20 || r.Makespan != 120*time.Second {
		t.Fatalf("succeeded %d by %s, want 20 by 120s", r.Succeeded, r.Makespan)
	}
}

func TestAutoScale(t *testing.T) {
	for _, c := range []struct {
		lb   time.Duration
		want float64
	}{{15*time.Hour + 46*time.Minute, 950}, {time.Hour, 60}, {30 * time.Second, 1}} {
		if got := autoScale(c.lb, time.Minute); got != c.want {
			t.Errorf("autoScale(%s) = %g, want %g", c.lb, got, c.want)
		}
	}
}

// The urgent copy is sent at half the fleet's bound; its region's bound
// counts its copy time, and it cannot end before it is sent plus that.
func TestLowerBoundWithTheUrgentCopy(t *testing.T) {
	// 2 slots, 1 GiB/s, 10 s start-up: copies of 20, 30, 110 s; the
	// fleet's bound is the longest copy, 110 s.
	f := testFleet(10, 20, 100)
	u := fleetImage{ID: "m-urgent", SizeGiB: 40} // 50 s
	f.Urgent = &u
	b := f.lowerBound()
	if b.UrgentAt != 55*time.Second || b.Makespan != 110*time.Second {
		t.Fatalf("urgent at %s, bound %s; want 55s and still the longest copy, 110s", b.UrgentAt, b.Makespan)
	}
	// Four copies of 40 s: 80 s over 2 slots. With the urgent copy of
	// 50 s: (160 s + 50 s) / 2 = 105 s.
	f = testFleet(30, 30, 30, 30)
	f.Urgent = &u
	if b := f.lowerBound(); b.UrgentAt != 40*time.Second || b.Makespan != 105*time.Second || b.Region != "cn-shanghai" {
		t.Fatalf("urgent at %s, bound %s (%q); want 40s, 105s from the urgent copy's region", b.UrgentAt, b.Makespan, b.Region)
	}
	// An urgent copy of 110 s sent at 40 s ends at 150 s at the earliest,
	// later than (160 s + 110 s) / 2.
	big := fleetImage{ID: "m-urgent", SizeGiB: 100}
	f.Urgent = &big
	if b := f.lowerBound(); b.Makespan != 150*time.Second {
		t.Fatalf("bound %s, want 150s: the urgent copy sent at 40s plus its 110s", b.Makespan)
	}
	if fb := f.fleetBound(); fb.Makespan != 80*time.Second {
		t.Fatalf("fleet bound %s, want 80s without the urgent copy", fb.Makespan)
	}
}

// The replay of ECS's queue ends a failed copy after its share of the
// duration, frees its slot then, and does not count it Available.
func TestReplayWithFailedCopies(t *testing.T) {
	f := testFleet(90, 90, 90) // 100 s each, 2 slots
	t0 := time.Now()
	tr := &trace{copies: map[string][]accepted{"cn-shanghai": {
		{at: t0, source: "m-a", image: "c1"},
		{at: t0, source: "m-b", image: "c2"},
		{at: t0, source: "m-c", image: "c3"},
	}}}
	fails := map[string]float64{"c1": 0.25}
	ends := availableAt(f, tr, t0, 1, nil, fails)
	if _, ok := ends["c1"]; ok {
		t.Fatalf("the failed copy counts as Available: %v", ends)
	}
	// c1 fails at 25 s; c3 takes its slot then and ends at 125 s.
	if ends["c2"] != 100*time.Second || ends["c3"] != 125*time.Second {
		t.Fatalf("ends %v, want c2 at 100s and c3 at 125s", ends)
	}
	st := regionStats(f, tr, f.lowerBound(), t0, 1, fails)
	if st[0].Copies != 3 || st[0].Finish != 125*time.Second {
		t.Fatalf("region stats %+v", st[0])
	}
}
