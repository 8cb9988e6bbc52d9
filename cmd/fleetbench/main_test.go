package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestTinyFleet runs the whole benchmark on a tiny fleet: the emulator on a
// real listener, replicatord built and run as a process, gRPC over its unix
// socket, the models. It proves the program works; it asserts no timing.
func TestTinyFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs replicatord")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"--images", "4", "--regions", "2", "--wall-target", "1s", "--runs", "2", "--markdown", "-v"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, errOut.String(), out.String())
	}
	s := out.String()
	for _, want := range []string{
		"fleet: 4 images",
		"urgent copy: urgent-image (40 GiB, not in the fleet) to cn-shanghai",
		"run 1: makespan", "run 2: makespan",
		"9/9 succeeded, 0 failed attempts, 0 failed; urgent copy COPYING after ",
		"terraform pattern (modeled)",
		"smart script run 1: makespan", "smart script run 2: makespan",
		"9/9 succeeded, 0 failed attempts, 0 given up, 0 refused; urgent copy Creating after ",
		"packer: 8/8 copies started (0 refused, 0 cancelled and 0 never sent",
		"median of 2 runs each",
		"targets (issue 12): makespan <= 1.01 x lower bound, <= 1.2 API calls per copy",
		"| smart script (SDK over HTTP, real) |",
		"| packer, fire and forget (SDK over HTTP, real) |",
		"completion unknown",
		"| replicatord |",
		"cn-shanghai", // per-region detail
		"  completion detection lag p50 / p95: ",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// Every copy was made exactly once, by the daemon and the script in
	// each of their 2 runs (the 8 fleet copies and the urgent one) and by
	// Packer (no urgent copy): accepted CopyImage calls.
	if n := strings.Count(s, "CopyImage:map[200:9]"); n != 4 {
		t.Errorf("want exactly 9 accepted CopyImage calls in each of 4 runs, found %d:\n%s", n, s)
	}
	if n := strings.Count(s, "CopyImage:map[200:8]"); n != 1 {
		t.Errorf("want exactly 8 accepted CopyImage calls in packer's run, found %d:\n%s", n, s)
	}
	// The daemon's and the script's rows have a detection lag (every
	// success was matched to its end in ECS's queue) and an urgent
	// latency; Packer's never sees one.
	for _, l := range strings.Split(s, "\n") {
		if (strings.HasPrefix(l, "| replicatord |") || strings.HasPrefix(l, "| smart script")) && strings.Count(l, " min") < 3 {
			t.Errorf("row without detection lag and urgent latency: %s", l)
		}
		if strings.HasPrefix(l, "| packer") && !strings.Contains(l, "never seen") {
			t.Errorf("packer's row claims a detection lag: %s", l)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--images", "0"}, "--images 0"},
		{[]string{"--regions", "7"}, "--regions 7"},
		{[]string{"--time-scale", "-1"}, "--time-scale -1"},
		{[]string{"--poll-min", "2m", "--poll-max", "1m"}, "poll-min"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--fail-rate", "1.5"}, "--fail-rate 1.5: want a share from 0 to 1"},
		{[]string{"--fail-rate", "-0.1"}, "--fail-rate -0.1"},
		{[]string{"--fail-rate", "NaN"}, "--fail-rate NaN"},
		{[]string{"--lookahead-time", "0s"}, "--lookahead-time 0s"},
		{[]string{"--detection-lag", "-1m"}, "--detection-lag -1m0s: want positive durations"},
		{[]string{"--fail-rate", "ten"}, "invalid value"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: stderr %q lacks %q", c.args, errOut.String(), c.want)
		}
	}
}
