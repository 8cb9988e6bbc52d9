package e2e

import (
	"strings"
	"testing"
	"time"
)

// The walking skeleton: one image copied to two regions and watched to
// SUCCEEDED, a third copy cancelled while Creating, and ECS holding exactly
// the expected images afterwards.
func TestCopyWatchCancel(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()

	out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-shanghai,cn-beijing", "-o", "json")
	if code != 0 {
		t.Fatalf("replctl copy exit %d:\n%s", code, out)
	}
	jobs := jobsIn(t, out)
	if len(jobs) != 2 {
		t.Fatalf("copy streamed %d jobs, want 2:\n%s", len(jobs), out)
	}
	for _, j := range jobs {
		if j.State != "JOB_STATE_SUCCEEDED" || j.DestinationImageID == "" {
			t.Fatalf("job %s ended %s (copy %q), want SUCCEEDED", j.ID, j.State, j.DestinationImageID)
		}
	}

	// A third copy, big enough to still be Creating when cancelled.
	out, code = e.ctl("copy", imgWindows, "--from", source, "--to", "ap-southeast-1", "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("replctl copy --detach exit %d:\n%s", code, out)
	}
	var third string
	for id := range jobsIn(t, out) {
		third = id
	}
	e.waitState(third, "JOB_STATE_COPYING", 60*time.Second)
	out, code = e.ctl("cancel", third, "-o", "json")
	if code != 0 {
		t.Fatalf("replctl cancel exit %d:\n%s", code, out)
	}
	e.waitState(third, "JOB_STATE_CANCELLED", 60*time.Second)

	// ECS, asked through the SDK: one copy in each of the two regions,
	// none left of the cancelled one.
	for _, r := range []string{"cn-shanghai", "cn-beijing"} {
		copies := e.copiesIn(r, imgAlinux)
		if len(copies) != 1 || copies[0].Status != "Available" {
			t.Errorf("%s holds %d copies of %s (%v), want exactly one Available", r, len(copies), imgAlinux, copies)
		}
	}
	if copies := e.copiesIn("ap-southeast-1", imgWindows); len(copies) != 0 {
		t.Errorf("ap-southeast-1 still holds %d copies of the cancelled job: %v", len(copies), copies)
	}

	// A finished job cannot be cancelled: FAILED_PRECONDITION (exit 10+9).
	var done string
	for id := range jobs {
		done = id
	}
	if out, code := e.ctl("cancel", done); code != 19 || !strings.Contains(out, "SUCCEEDED") {
		t.Errorf("cancel of a finished job: exit %d, %q; want 19 (FailedPrecondition) naming its state", code, out)
	}
}

// SIGKILL during a copy: the restarted daemon finishes it, and ECS holds
// exactly one copy.
func TestKillDuringCopy(t *testing.T) {
	e := newEnv(t)
	d := e.startDaemon()
	out, code := e.ctl("copy", imgUbuntu, "--from", source, "--to", "cn-shenzhen", "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("copy exit %d:\n%s", code, out)
	}
	var id string
	for k := range jobsIn(t, out) {
		id = k
	}
	e.waitState(id, "JOB_STATE_COPYING", 60*time.Second)
	d.kill9()

	e.startDaemon()
	e.waitState(id, "JOB_STATE_SUCCEEDED", 90*time.Second)
	if copies := e.copiesIn("cn-shenzhen", imgUbuntu); len(copies) != 1 {
		t.Fatalf("cn-shenzhen holds %d copies after the restart, want exactly 1: %v", len(copies), copies)
	}
}
