package e2e

import (
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/failpoint"
)

// The daemon is SIGKILLed at each point of a copy's life (by a failpoint,
// so the moment is exact), restarted, and must finish every job with
// exactly one copy in ECS — or none for a cancelled one.
func TestCrashAtEveryPoint(t *testing.T) {
	cases := []struct {
		point  string
		cancel bool
	}{
		{failpoint.BeforeCopyImage, false},
		{failpoint.AfterCopyImage, false},
		{failpoint.WhileCreating, false},
		{failpoint.BeforeCancelCopyImage, true},
		{failpoint.AfterCancelCopyImage, true},
	}
	for _, c := range cases {
		t.Run(c.point, func(t *testing.T) {
			e := newEnv(t)
			e.daemon = start(t, "replicatord", append(credsEnv(), failpoint.EnvVar+"="+c.point), "--config", e.config)
			e.daemon.waitLine("replicatord ready", 30*time.Second)
			dead := e.daemon

			out, code := e.ctl("copy", imgUbuntu, "--from", source, "--to", "cn-qingdao", "--detach", "-o", "json")
			var id string
			for k := range jobsIn(t, out) {
				id = k
			}
			if c.cancel {
				if code != 0 {
					t.Fatalf("copy exit %d: %s", code, out)
				}
				e.waitState(id, "JOB_STATE_COPYING", 60*time.Second)
				e.ctl("cancel", id) // the daemon dies while cancelling
			}
			if code := dead.wait(60 * time.Second); code != -1 {
				t.Fatalf("daemon exited with %d; want it killed by the failpoint", code)
			}
			if id == "" {
				// Killed before the Copy stream showed the job: find it.
				e.startDaemon()
				out, _ := e.ctl("jobs", "-o", "json")
				for k := range jobsIn(t, out) {
					id = k
				}
				if id == "" {
					t.Fatalf("no job after the restart: %s", out)
				}
			} else {
				e.startDaemon()
			}
			want, copies := "JOB_STATE_SUCCEEDED", 1
			if c.cancel {
				want, copies = "JOB_STATE_CANCELLED", 0
			}
			e.waitState(id, want, 120*time.Second)
			if got := e.copiesIn("cn-qingdao", imgUbuntu); len(got) != copies {
				t.Fatalf("cn-qingdao holds %d copies, want %d: %v", len(got), copies, got)
			}
		})
	}
}
