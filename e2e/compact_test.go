package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// seedFinishedJobs writes a state file with old finished jobs (finished 60
// days ago) and recent ones, through the store itself, and returns the
// recent jobs' ids and states.
func seedFinishedJobs(t *testing.T, path string, old, recent int) map[string]job.State {
	t.Helper()
	fc := clock.NewFake(time.Now().Add(-60 * 24 * time.Hour))
	st, err := state.Open(path, state.Options{Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mk := func(i int, s job.State) *job.Job {
		fc.Step(time.Millisecond)
		return &job.Job{
			ID: job.NewID(fc.Now()), SourceRegion: source, SourceImageID: fmt.Sprintf("m-seed%05d", i),
			DestinationRegion: "cn-beijing", State: s, FinishTime: fc.Now(),
			Tags: map[string]string{"note": strings.Repeat("n", 1500)},
		}
	}
	var batch []*job.Job
	for i := range old {
		batch = append(batch, mk(i, job.StateCancelled))
		if len(batch) == 500 || i == old-1 {
			if err := st.Create(context.Background(), batch...); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	fc.Set(time.Now())
	kept := map[string]job.State{}
	for i := range recent {
		s := []job.State{job.StateSucceeded, job.StateFailed, job.StateCancelled}[i%3]
		j := mk(old+i, s)
		if err := st.Create(context.Background(), j); err != nil {
			t.Fatal(err)
		}
		kept[j.ID] = s
	}
	return kept
}

// TestCompactStateFile: the daemon's retention removes finished jobs past
// daemon.job_retention at start; --compact-state refuses while the daemon
// runs, then shrinks the file; the daemon starts on it with every remaining
// job intact.
func TestCompactStateFile(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "data", "state.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	kept := seedFinishedJobs(t, path, 2000, 12)
	e.startDaemon()
	if line := e.daemon.waitLine("removed finished jobs past their retention", 60*time.Second); !strings.Contains(line, "jobs=2000") {
		t.Errorf("retention removed other than the 2000 old jobs: %s", line)
	}

	compact := func() (string, int) {
		out, err := exec.Command(filepath.Join(binDir, "replicatord"), "--compact-state", path).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out, code := compact(); code != 1 || !strings.Contains(out, "stop the daemon") || !strings.Contains(out, path) {
		t.Fatalf("--compact-state while the daemon runs: exit %d: %s", code, out)
	}
	if now, _ := os.ReadFile(path); len(now) != len(before) {
		t.Errorf("a refused --compact-state changed the file size from %d to %d", len(before), len(now))
	}
	if code := e.daemon.stop(); code != 0 {
		t.Fatalf("daemon stop: exit %d", code)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sizeBefore := fi.Size()
	out, code := compact()
	if code != 0 || !strings.Contains(out, "compacted from") {
		t.Fatalf("--compact-state: exit %d: %s", code, out)
	}
	fi, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (%d -> %d bytes)", strings.TrimSpace(out), sizeBefore, fi.Size())
	if fi.Size()*5 > sizeBefore {
		t.Errorf("state file went from %d to %d bytes; with 2000 of 2012 jobs removed it should be under a fifth", sizeBefore, fi.Size())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %04o, want 0600", fi.Mode().Perm())
	}
	if out, err := exec.Command(filepath.Join(binDir, "replicatord"), "--check-state", path).CombinedOutput(); err != nil {
		t.Fatalf("--check-state after compaction: %v: %s", err, out)
	}

	e.startDaemon()
	out, code = e.ctl("jobs", "--all", "-o", "json")
	if code != 0 {
		t.Fatalf("replctl jobs: exit %d: %s", code, out)
	}
	got := jobsIn(t, out)
	if len(got) != len(kept) {
		t.Errorf("%d jobs after compaction, want the %d kept", len(got), len(kept))
	}
	for id, s := range kept {
		j, ok := got[id]
		if !ok {
			t.Errorf("kept job %s missing after compaction", id)
			continue
		}
		if j.State != "JOB_STATE_"+s.String() {
			t.Errorf("job %s is %s after compaction, want %s", id, j.State, s)
		}
	}
}
