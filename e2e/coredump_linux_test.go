//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashAndCollect runs name with args in dir with core dumps allowed
// (RLIMIT_CORE unlimited, GOTRACEBACK=crash), waits for ready on its
// output, sends SIGABRT and returns the core files left in dir.
func crashAndCollect(t *testing.T, dir, ready, name string, env []string, args ...string) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), env...), "GOTRACEBACK=crash")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	var seen strings.Builder
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(seen.String(), ready) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s did not print %q:\n%s", name, ready, seen.String())
		}
		n, err := out.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			cmd.Wait()
			t.Fatalf("%s exited before %q:\n%s", name, ready, seen.String())
		}
	}
	go func() { // drain the traceback
		for {
			if _, err := out.Read(buf); err != nil {
				return
			}
		}
	}()
	cmd.Process.Signal(syscall.SIGABRT)
	cmd.Wait()
	cores, _ := filepath.Glob(filepath.Join(dir, "core*"))
	return cores
}

// TestNoCoreDump: a crashing replicatord leaves no core file (it would hold
// the access key secret): the process is not dumpable. The same crash of
// ecsemu, which does not turn dumps off, is the control that shows this
// machine writes core files at all.
func TestNoCoreDump(t *testing.T) {
	pattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	if strings.HasPrefix(string(pattern), "|") {
		t.Skipf("core dumps go to a program here (%s); cannot look for a core file", strings.TrimSpace(string(pattern)))
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: old.Max, Max: old.Max}); err != nil || old.Max == 0 {
		t.Skipf("cannot raise RLIMIT_CORE (max %d): %v", old.Max, err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_CORE, &old)
	root := t.TempDir()

	control := crashAndCollect(t, filepath.Join(root, "control"), "listening on http://", "ecsemu", credsEnv(), "--listen", "127.0.0.1:0")
	if len(control) == 0 {
		t.Skipf("this machine wrote no core file for the control process (core_pattern %q); nothing to compare with", strings.TrimSpace(string(pattern)))
	}
	for _, c := range control {
		os.Remove(c)
	}

	dir := filepath.Join(root, "daemon")
	os.MkdirAll(dir, 0o700)
	cfg := filepath.Join(dir, "replicatord.yaml")
	os.WriteFile(cfg, []byte("version: 1\ncloud: {provider: simulated}\n"), 0o600)
	cores := crashAndCollect(t, dir, "replicatord ready", "replicatord", credsEnv(), "--config", cfg)
	if len(cores) != 0 {
		t.Errorf("replicatord left core files %v (they hold the access key secret)", cores)
	}
}
