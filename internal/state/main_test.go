package state

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/job"
)

// helperEnv makes the test binary act as a helper process (see
// runHelper): the re-exec pattern lets tests SIGKILL a real process that
// holds the store.
const helperEnv = "STATE_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv("STATE_TEST_PATH")))
	}
	goleak.VerifyTestMain(m)
}

// runHelper is the child side of helper-process tests. It writes one line
// on stdout when it has done its part, then either exits or waits to be
// killed.
func runHelper(mode, path string) int {
	ctx := context.Background()
	start := time.Now()
	d, err := Open(path, Options{})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	switch mode {
	case "hold":
		fmt.Println("ready")
		holdUntilKilled()
	case "update-then-hang":
		j, err := d.Update(ctx, os.Getenv("STATE_TEST_JOB"), func(j *job.Job) error {
			j.State = job.StateSubmitting
			j.ClientToken = job.Token(j.ID, 1)
			return nil
		})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		// Update has returned: the change must survive the SIGKILL that follows.
		fmt.Println("done", j.Revision)
		holdUntilKilled()
	case "restart":
		// Reopen + Active is what a daemon restart costs before it can
		// schedule again.
		active, err := d.Active(ctx)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		elapsed := time.Since(start)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = d.Close()
		fmt.Println("active", len(active), "us", elapsed.Microseconds(), "hwm_kib", vmHWM(), "heap_kib", ms.HeapAlloc/1024)
		return 0
	}
	fmt.Println("error: unknown helper mode", mode)
	return 2
}

// vmHWM returns the process's peak resident set in KiB.
func vmHWM() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib
		}
	}
	return -1
}

// helper starts the test binary as a helper process in mode.
func helper(t testing.TB, mode, path string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "STATE_TEST_PATH="+path)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

var epoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// testStore opens a store in a temp dir with a fake clock.
func testStore(t testing.TB, opts Options) (*DB, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(epoch)
	if opts.Clock == nil {
		opts.Clock = fc
	}
	d, err := Open(t.TempDir()+"/state.db", opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, fc
}

// newJob returns a queued job whose id is time-ordered by the fake clock,
// which it moves by a millisecond so ids sort by creation.
func newJob(fc *clock.Fake, policy, image, region string) *job.Job {
	fc.Step(time.Millisecond)
	return &job.Job{
		ID:                job.NewID(fc.Now()),
		Policy:            policy,
		SourceRegion:      "cn-hangzhou",
		SourceImageID:     image,
		DestinationRegion: region,
		State:             job.StateQueued,
		Tags:              map[string]string{"team": "infra"},
	}
}

func mustCreate(t testing.TB, d *DB, jobs ...*job.Job) {
	t.Helper()
	if err := d.Create(context.Background(), jobs...); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

func setState(s job.State) func(*job.Job) error {
	return func(j *job.Job) error { j.State = s; return nil }
}

// holdUntilKilled blocks the helper until the test kills it. Not select{}:
// with every goroutine blocked on channels the runtime reports a deadlock
// and exits the helper, releasing the lock the test means it to hold (the
// store's writer waits on channels only).
func holdUntilKilled() {
	for {
		time.Sleep(time.Hour)
	}
}
