package e2e

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A damaged, foreign or newer state file stops the real daemon with a
// clear error naming the file and the problem — exit 1, no panic, no stack
// trace — and the file is left byte for byte as it was.
func TestStateFileFaults(t *testing.T) {
	e := newEnv(t)
	good := e.goodStateFile()
	pageSize := os.Getpagesize()

	cases := []struct {
		name  string
		make  func(t *testing.T, path string)
		wants []string
		// checkWants must be in --check-state's output too.
		checkWants []string
	}{
		{"empty (0 bytes)", func(t *testing.T, path string) {
			writeStateBytes(t, path, nil)
		}, []string{"is empty (0 bytes)", "not a replicatord state file"}, []string{"is empty (0 bytes)"}},
		{"bbolt file with no buckets", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, []string{"bbolt database with no buckets", "not a replicatord state file"}, []string{"no buckets"}},
		{"truncated", func(t *testing.T, path string) {
			writeStateBytes(t, path, good[:len(good)/2])
		}, []string{"corrupt"}, nil},
		{"truncated below the header", func(t *testing.T, path string) {
			writeStateBytes(t, path, good[:100])
		}, []string{"not a bbolt database or its header is corrupt"}, nil},
		{"garbage over the root page", func(t *testing.T, path string) {
			b := bytes.Clone(good)
			for _, root := range rootPages(t, good) {
				copy(b[root*uint64(pageSize):], bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, pageSize/4))
			}
			writeStateBytes(t, path, b)
		}, []string{"corrupt"}, nil},
		{"garbage over both meta pages", func(t *testing.T, path string) {
			b := bytes.Clone(good)
			copy(b, bytes.Repeat([]byte{0x5a}, 2*pageSize))
			writeStateBytes(t, path, b)
		}, []string{"not a bbolt database or its header is corrupt"}, nil},
		{"not a bbolt file", func(t *testing.T, path string) {
			writeStateBytes(t, path, bytes.Repeat([]byte("this is a text file, not a database\n"), 1000))
		}, []string{"not a bbolt database"}, []string{"not a bbolt database"}},
		{"newer schema", func(t *testing.T, path string) {
			writeStateBytes(t, path, good)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), binary.BigEndian.AppendUint64(nil, 99))
			}); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, []string{"schema version 99", "supports up to 3"}, nil},
		{"bbolt file of another program", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			}); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, []string{"not a replicatord state file", "widgets"}, []string{"widgets"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dataDir, "state.db")
			c.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p := start(t, "replicatord", credsEnv(), "--config", e.config, "--data-dir", dataDir)
			code := p.wait(30 * time.Second)
			out := p.output()
			if code != 1 {
				t.Errorf("exit %d, want 1; output:\n%s", code, out)
			}
			for _, w := range append([]string{path}, c.wants...) {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
			assertNoPanic(t, out)
			if strings.Contains(out, "replicatord ready") {
				t.Errorf("the daemon served on a bad state file:\n%s", out)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("the daemon changed the state file (%d bytes before, %d after)", len(before), len(after))
			}
			// --check-state agrees that the file is bad, also without a panic.
			chk := exec.Command(filepath.Join(binDir, "replicatord"), "--check-state", path)
			cout, err := chk.CombinedOutput()
			if err == nil {
				t.Errorf("--check-state passed a bad file: %s", cout)
			}
			for _, w := range c.checkWants {
				if !strings.Contains(string(cout), w) {
					t.Errorf("--check-state does not name %q: %s", w, cout)
				}
			}
			if strings.Contains(string(cout), "bad file descriptor") {
				t.Errorf("--check-state hides the problem behind an I/O error: %s", cout)
			}
			assertNoPanic(t, string(cout))
		})
	}
}

// A second daemon on the data directory of a running one exits 1 naming
// the file in use and changes nothing; the first keeps serving.
func TestStateFileSecondDaemon(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	path := filepath.Join(e.dir, "data", "state.db")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	second := start(t, "replicatord", credsEnv(), "--config", e.config)
	code := second.wait(30 * time.Second)
	out := second.output()
	if code != 1 || !strings.Contains(out, path) || !strings.Contains(out, "in use") {
		t.Errorf("second daemon: exit %d, want 1 naming %s in use:\n%s", code, path, out)
	}
	assertNoPanic(t, out)
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("the state file changed while a second daemon tried it")
	}
	if out, code := e.ctl("jobs"); code != 0 {
		t.Errorf("the first daemon stopped serving: exit %d: %s", code, out)
	}
}

// A full disk: the daemon's data directory on a 1 MiB tmpfs, filled up
// while it runs. A write that does not fit is an error the client sees
// (or a clear exit), never a panic, and what was committed survives.
func TestStateFileDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	e := newEnv(t)
	dataDir := filepath.Join(mnt, "data")
	e.daemon = start(t, "replicatord", credsEnv(), "--config", e.config, "--data-dir", dataDir)
	e.daemon.waitLine("replicatord ready", 30*time.Second)
	ctl := func(args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(binDir, "replctl"), args...)
		cmd.Env = append(os.Environ(), "REPLCTL_ADDRESS=unix://"+filepath.Join(dataDir, "replicatord.sock"))
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	// One committed job.
	out, code := ctl("copy", imgAlinux, "--from", source, "--to", "cn-beijing", "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("copy before the disk filled: exit %d: %s", code, out)
	}
	committed := jobsIn(t, out)
	// Fill the disk.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()
	// Enough new jobs that their records need new pages (--force: the same
	// copy again would otherwise be answered by the existing jobs).
	var failed bool
	for i := 0; i < 20 && !failed; i++ {
		out, code = ctl("copy", imgUbuntu, "--from", source, "--to", "cn-shanghai,cn-shenzhen,cn-qingdao,cn-chengdu,ap-southeast-1", "--detach", "-o", "json",
			"--name", "filler-"+strings.Repeat("x", 100), "--description", strings.Repeat("d", 250), "--force")
		assertNoPanic(t, out)
		failed = code != 0
	}
	assertNoPanic(t, e.daemon.output())
	if !failed {
		t.Skip("the disk never filled up for the state file (tmpfs kept room for its pages)")
	}
	t.Logf("refused on a full disk: exit %d: %s", code, out)
	if !strings.Contains(strings.ToLower(out+e.daemon.output()), "no space") {
		t.Errorf("neither the client nor the daemon says the disk is full:\nclient: %s\ndaemon:\n%s", out, e.daemon.output())
	}
	// Free the space; the committed job is still there after a restart,
	// and the file passes the check.
	os.Remove(filepath.Join(mnt, "filler"))
	select {
	case <-e.daemon.done:
	default:
		e.daemon.stop()
	}
	e.daemon = start(t, "replicatord", credsEnv(), "--config", e.config, "--data-dir", dataDir)
	e.daemon.waitLine("replicatord ready", 30*time.Second)
	out, _ = ctl("jobs", "--all", "-o", "json")
	for id := range committed {
		if _, ok := jobsIn(t, out)[id]; !ok {
			t.Errorf("committed job %s lost after the disk was full: %s", id, out)
		}
	}
	e.daemon.stop()
	if out, err := exec.Command(filepath.Join(binDir, "replicatord"), "--check-state", filepath.Join(dataDir, "state.db")).CombinedOutput(); err != nil {
		t.Errorf("--check-state after a full disk: %v: %s", err, out)
	}
}

// goodStateFile runs the daemon once to make a healthy state file with a
// job in it and returns its bytes.
func (e *env) goodStateFile() []byte {
	e.t.Helper()
	e.startDaemon()
	if out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-beijing", "-o", "json"); code != 0 {
		e.t.Fatalf("copy: exit %d: %s", code, out)
	}
	if code := e.daemon.stop(); code != 0 {
		e.t.Fatalf("daemon stop: exit %d", code)
	}
	b, err := os.ReadFile(filepath.Join(e.dir, "data", "state.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// rootPages reads the root bucket page of each of bbolt's two meta pages:
// page header (16 bytes), then magic, version, page size, flags (4 bytes
// each), then the root bucket's page id.
func rootPages(t *testing.T, b []byte) []uint64 {
	t.Helper()
	ps := os.Getpagesize()
	var out []uint64
	for i := 0; i < 2; i++ {
		off := i*ps + 16
		if got := binary.LittleEndian.Uint32(b[off:]); got != 0xED0CDAED {
			t.Fatalf("meta page %d: magic %#x", i, got)
		}
		out = append(out, binary.LittleEndian.Uint64(b[off+16:]))
	}
	return out
}

func writeStateBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// assertNoPanic fails on a Go panic or stack trace in a program's output.
func assertNoPanic(t *testing.T, out string) {
	t.Helper()
	if showsCrash(out) {
		t.Errorf("output shows a crash:\n%s", out)
	}
}

func showsCrash(out string) bool {
	for _, s := range []string{"panic:", "goroutine ", "runtime error", "SIGSEGV", "SIGBUS"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}
