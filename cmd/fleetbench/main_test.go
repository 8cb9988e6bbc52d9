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
		"packer pattern (modeled)",
		"| replicatord |",
		"cn-shanghai", // per-region detail
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// Every copy was made exactly once: 8 CopyImage calls answered 200.
	if !strings.Contains(s, "CopyImage:map[200:8]") {
		t.Errorf("want exactly 8 accepted CopyImage calls:\n%s", s)
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
