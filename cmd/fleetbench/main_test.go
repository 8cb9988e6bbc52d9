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
	code := run(ctx, []string{"--images", "4", "--regions", "2", "--wall-target", "1s", "--markdown", "-v"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, errOut.String(), out.String())
	}
	s := out.String()
	for _, want := range []string{
		"fleet: 4 images",
		"8/8 succeeded, 0 failed",
		"terraform pattern (modeled)",
		"smart script: makespan",
		"8/8 succeeded, 0 failed, 0 refused",
		"packer: 8/8 copies started (0 refused, 0 cancelled and 0 never sent",
		"| smart script (SDK over HTTP, real) |",
		"| packer, fire and forget (SDK over HTTP, real) |",
		"completion unknown",
		"| replicatord |",
		"cn-shanghai", // per-region detail
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// Every copy was made exactly once, by the daemon, the script and
	// Packer each: 8 CopyImage calls answered 200 in each of their runs.
	if n := strings.Count(s, "CopyImage:map[200:8]"); n != 3 {
		t.Errorf("want exactly 8 accepted CopyImage calls in each of 3 runs, found %d:\n%s", n, s)
	}
	// The daemon's row has a detection lag (every success was matched
	// to its end in ECS's queue); Packer's never sees one.
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "| replicatord |") && !strings.Contains(l, " min / ") {
			t.Errorf("replicatord's row has no detection lag: %s", l)
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
