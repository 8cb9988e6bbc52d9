package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// ptyRun runs the real replctl binary on a pseudo-terminal of 100x30 and
// collects everything it writes.
type ptyRun struct {
	cmd  *exec.Cmd
	tty  *os.File
	out  *syncBuffer
	done chan struct{}
}

func startPTY(t *testing.T, args ...string) *ptyRun {
	t.Helper()
	cmd := exec.Command(replctlBin, args...)
	cmd.Env = append(os.Environ(), "TERM=xterm", "REPLCTL_ADDRESS=", "REPLCTL_TOKEN=")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	r := &ptyRun{cmd: cmd, tty: tty, out: newSyncBuffer(), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_, _ = io.Copy(r.out, tty) // ends with EIO once the child has exited
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		tty.Close()
		<-r.done
	})
	return r
}

// wait waits for the process to exit and for its output to drain, and
// returns the exit code.
func (r *ptyRun) wait(t *testing.T) int {
	t.Helper()
	err := r.cmd.Wait()
	<-r.done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (r *ptyRun) screen(t *testing.T) string {
	t.Helper()
	vt := newVTScreen()
	// The pty turns \n into \r\n (ONLCR); the emulator handles both.
	vt.feed(t, r.out.String())
	return vt.text()
}

func TestPTYCopyLiveView(t *testing.T) {
	step := make(chan struct{})
	srv := &fakeServer{copy: func(_ *replicatorv1.CopyRequest, st grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		send := func(j *replicatorv1.Job) {
			if err := st.Send(&replicatorv1.CopyResponse{Job: j, Revision: j.Revision}); err != nil {
				t.Error(err)
			}
		}
		a := withRev(sampleJob("j-0001", "cn-shanghai", stQueued, 0), 1)
		b := withRev(sampleJob("j-0002", "cn-beijing", stQueued, 0), 2)
		send(a)
		send(b)
		a = withRev(sampleJob("j-0001", "cn-shanghai", stCopying, 45), 3)
		send(a)
		b = withRev(sampleJob("j-0002", "cn-beijing", stWaiting, 0), 4)
		send(b)
		<-step // the test has seen the copy in progress
		send(withRev(sampleJob("j-0001", "cn-shanghai", stSucceeded, 100), 5))
		send(withRev(sampleJob("j-0002", "cn-beijing", stFailed, 0), 6))
		return nil
	}}
	addr := serve(t, srv)
	r := startPTY(t, "--address", addr, "copy", "m-bp1src0000000000001", "--from", "cn-hangzhou", "--to", "cn-shanghai,cn-beijing")

	r.out.waitFor(t, "the copy in progress on screen", func(string) bool {
		s := newVTScreen()
		s.feed(t, r.out.String())
		scr := s.text()
		return strings.Contains(scr, "COPYING") && strings.Contains(scr, "45%") && strings.Contains(scr, "█") && strings.Contains(scr, "WAITING")
	})
	mid := r.screen(t)
	if !strings.Contains(mid, "ETA 7m00s") || !strings.Contains(mid, "image m-bp1src0000000000001 (ubuntu-22.04-base) from cn-hangzhou") {
		t.Errorf("live view while copying:\n%s", mid)
	}
	close(step)
	if code := r.wait(t); code != exitFailure {
		t.Errorf("exit %d, want %d (one copy failed)", code, exitFailure)
	}
	final := r.screen(t)
	want := strings.Join([]string{
		"image m-bp1src0000000000001 (ubuntu-22.04-base) from cn-hangzhou",
		// Cut to the 100 columns of the terminal, less the last one.
		truncate("  cn-beijing   FAILED      ✗ QuotaExceed.Image: The image quota in the destination region is exceeded.", 99),
		"  ✓ 1 succeeded, ✗ 1 failed",
		"replctl: 1 of 2 copies failed",
	}, "\n")
	if final != want {
		t.Errorf("final screen:\n%s\n--- want ---\n%s\n--- raw ---\n%q", final, want, r.out.String())
	}
	if strings.Count(r.out.String(), "\x1b[?25l") != 1 || !strings.Contains(r.out.String(), "\x1b[?25h") {
		t.Error("the cursor must be hidden once while drawing and shown again at the end")
	}
}

// watch in a terminal runs until Ctrl-C, exits 0 and leaves its last frame.
func TestPTYWatchInterrupt(t *testing.T) {
	srv := &fakeServer{watch: func(_ *replicatorv1.WatchRequest, st grpc.ServerStreamingServer[replicatorv1.WatchResponse]) error {
		j := withRev(sampleJob("j-0001", "cn-shanghai", stCopying, 20), 3)
		j.Policy = "nightly"
		_ = st.Send(&replicatorv1.WatchResponse{Revision: 3, Job: j, Snapshot: true})
		_ = st.Send(&replicatorv1.WatchResponse{Revision: 3, SnapshotComplete: true})
		j = proto.Clone(j).(*replicatorv1.Job)
		j.ProgressPercent = 70
		_ = st.Send(&replicatorv1.WatchResponse{Revision: 4, Job: withRev(j, 4)})
		<-st.Context().Done()
		return nil
	}}
	addr := serve(t, srv)
	r := startPTY(t, "--address", addr, "watch")
	r.out.waitForText(t, "70%")
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { done <- r.wait(t) }()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after Ctrl-C, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on SIGINT")
	}
	scr := r.screen(t)
	if !strings.HasPrefix(scr, "policy nightly\n  m-bp1src0000000000001 (ubuntu-22.04-base)\n    cn-shanghai  COPYING      70%") || strings.Contains(scr, " 20%") {
		t.Errorf("final screen:\n%s", scr)
	}
}
