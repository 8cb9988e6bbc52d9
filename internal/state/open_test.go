package state

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

func TestFileMode(t *testing.T) {
	d, _ := testStore(t, Options{})
	fi, err := os.Stat(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx := context.Background()
	j := newJob(fc, "p", "m", "r")
	mustCreate(t, d, j)
	want, err := d.Update(ctx, j.ID, setState(job.StateSubmitting))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2, err := Open(d.Path(), Options{Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	got, err := d2.Get(ctx, j.ID)
	if err != nil || got.State != job.StateSubmitting || got.Revision != want.Revision {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if d2.Revision() != 2 {
		t.Fatalf("Revision() after reopen = %d, want 2", d2.Revision())
	}
	// The revision counter continues where it was.
	got, err = d2.Update(ctx, j.ID, setState(job.StateWaiting))
	if err != nil || got.Revision != 3 {
		t.Fatalf("update after reopen: rev %d, %v", got.Revision, err)
	}
}

// TestDurableAfterSIGKILL: a child process updates a job and reports that
// Update returned; it is then SIGKILLed with no chance to close the file.
// Reopening must find the change.
func TestDurableAfterSIGKILL(t *testing.T) {
	path := t.TempDir() + "/state.db"
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	j := newJob(clock.NewFake(epoch), "", "m", "r")
	mustCreate(t, d, j)
	d.Close()

	cmd := helper(t, "update-then-hang", path, "STATE_TEST_JOB="+j.ID)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "done ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	d, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer d.Close()
	got, err := d.Get(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != job.StateSubmitting || got.ClientToken != job.Token(j.ID, 1) || line != "done 2\n" {
		t.Fatalf("after SIGKILL: state %s token %q (child said %q); the acknowledged update was lost", got.State, got.ClientToken, line)
	}
	d.Close()
	if err := Check(path); err != nil {
		t.Fatalf("Check after SIGKILL: %v", err)
	}
}

func TestSecondOpenerGetsLockError(t *testing.T) {
	path := t.TempDir() + "/state.db"
	cmd := helper(t, "hold", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	_, err = Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("second Open = %v, want ErrUnavailable", err)
	}
	want := "state file " + path + " is in use by another process (bbolt lock not acquired within 50ms)"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if err := Check(path); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Check on a file in use = %v, want ErrUnavailable", err)
	}
}

func TestSecondOpenerInProcess(t *testing.T) {
	d, _ := testStore(t, Options{})
	if _, err := Open(d.Path(), Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("second Open in the same process = %v, want ErrUnavailable", err)
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestNewerSchemaRefusedAndUntouched(t *testing.T) {
	d, fc := testStore(t, Options{})
	mustCreate(t, d, newJob(fc, "", "m", "r"))
	d.Close()
	rawUpdate(t, d.Path(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, u64(99))
	})
	before := fileHash(t, d.Path())
	_, err := Open(d.Path(), Options{})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Open of a newer schema = %v, want ErrFailedPrecondition", err)
	}
	want := fmt.Sprintf("state file %s has schema version 99, this replicatord supports up to %d", d.Path(), schemaVersion())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if fileHash(t, d.Path()) != before {
		t.Fatal("refusing a newer schema changed the file")
	}
}

func TestNotABboltFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"short text": []byte("jobs:\n  - id: j-1\n"),
		"long text":  bytes.Repeat([]byte("not a database\n"), 2000),
	} {
		path := dir + "/" + strings.ReplaceAll(name, " ", "_")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, Options{})
		if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a bbolt database") {
			t.Errorf("%s: Open = %v, want ErrDataLoss naming the file", name, err)
		}
		if err := Check(path); !errors.Is(err, errdefs.ErrDataLoss) {
			t.Errorf("%s: Check = %v, want ErrDataLoss", name, err)
		}
	}
}

func TestForeignBboltFileRefused(t *testing.T) {
	path := t.TempDir() + "/other.db"
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("containers"))
		return err
	})
	_, err := Open(path, Options{})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not a replicatord state file") {
		t.Fatalf("Open of a foreign bbolt file = %v", err)
	}
}

func TestBadPaths(t *testing.T) {
	if _, err := Open("", Options{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Open(\"\") = %v", err)
	}
	if err := Check(""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Check(\"\") = %v", err)
	}
	dir := t.TempDir()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open(a directory) = %v, want an error naming it", err)
	}
}

func TestMissingDirectory(t *testing.T) {
	_, err := Open(t.TempDir()+"/no/such/dir/state.db", Options{})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "/no/such/dir/state.db") {
		t.Fatalf("Open in a missing directory = %v", err)
	}
}

// populated returns the path of a closed store file holding n jobs with a
// few updates each, so that it spans many pages.
func populated(t *testing.T, n int) string {
	t.Helper()
	d, fc := testStore(t, Options{})
	ctx := context.Background()
	jobs := make([]*job.Job, n)
	for i := range jobs {
		jobs[i] = newJob(fc, "policy-a", "m-"+strings.Repeat("x", i%7), "cn-beijing")
		jobs[i].DestinationDescription = strings.Repeat("description ", 20)
	}
	mustCreate(t, d, jobs...)
	for _, j := range jobs[:n/2] {
		if _, err := d.Update(ctx, j.ID, setState(job.StateSubmitting)); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	return d.Path()
}

// useAll exercises every read path of a store that opened, so a corrupt
// page is met; it must produce errors, never a panic.
func useAll(d *DB) (errs []error) {
	ctx := context.Background()
	if _, err := d.Active(ctx); err != nil {
		errs = append(errs, err)
	}
	// One filter per index, so every index bucket is read.
	filters := []Filter{{}, {Policy: "policy-a"}, {DestinationRegion: "cn-beijing"},
		{States: []job.State{job.StateQueued, job.StateSubmitting, job.StateFailed}}}
	for i := 0; i < 7; i++ {
		filters = append(filters, Filter{SourceImageID: "m-" + strings.Repeat("x", i)})
	}
	for _, f := range filters {
		for tok := ""; ; {
			jobs, next, _, err := d.List(ctx, f, 1000, tok)
			if err != nil {
				errs = append(errs, err)
			}
			if err != nil || next == "" {
				break
			}
			for _, j := range jobs {
				if _, err := d.Get(ctx, j.ID); err != nil {
					errs = append(errs, err)
				}
			}
			tok = next
		}
	}
	// The whole history, so every events page is read.
	if w, err := d.Watch(ctx, 0); err == nil {
		for ev := range w.Events() {
			if ev.Revision == d.Revision() {
				break
			}
		}
		w.Close()
		if w.Err() != nil {
			errs = append(errs, w.Err())
		}
	} else {
		errs = append(errs, err)
	}
	// Writes meet the damage too.
	if _, err := d.Update(ctx, "j-x", setState(job.StateFailed)); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		errs = append(errs, err)
	}
	for _, err := range errs {
		if !errors.Is(err, errdefs.ErrDataLoss) {
			errs = append(errs, fmt.Errorf("error of the wrong class: %w", err))
			break
		}
	}
	return errs
}

func TestTruncatedFile(t *testing.T) {
	path := populated(t, 400)
	fi, _ := os.Stat(path)
	for _, size := range []int64{fi.Size() / 2, 3 * 4096, 4096 + 100, 100} {
		p := t.TempDir() + "/truncated.db"
		b, _ := os.ReadFile(path)
		if err := os.WriteFile(p, b[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := Open(p, Options{})
		t.Logf("truncated to %d of %d bytes: Open: %v", size, fi.Size(), err)
		if err == nil {
			// bbolt may accept the header; the damage must then show up
			// as errors, and Check must report it.
			errs := useAll(d)
			t.Logf("  reads: %v", errs)
			d.Close()
			if err := Check(p); !errors.Is(err, errdefs.ErrDataLoss) {
				t.Errorf("truncated to %d: Open succeeded and Check = %v, want ErrDataLoss", size, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), p) {
			t.Errorf("truncated to %d: Open = %v, want ErrDataLoss naming the file", size, err)
		}
	}
}

// TestCorruptedPages overwrites pages in the middle of a valid file with
// garbage. Whatever bbolt makes of it, the store must answer with errors
// (and Check must find the damage), never crash.
func TestCorruptedPages(t *testing.T) {
	path := populated(t, 400)
	orig, _ := os.ReadFile(path)
	pages := len(orig) / 4096
	_ = pages
	// Pages 2 and 3 hold the first bucket roots; the middle of the file
	// holds job and event leaves (in this fresh file, no page is free).
	for _, pg := range []int{2, 3, pages / 3, pages / 2} {
		b := bytes.Clone(orig)
		for i := pg * 4096; i < (pg+1)*4096 && i < len(b); i++ {
			b[i] = byte(i*31 + pg)
		}
		p := t.TempDir() + "/corrupt.db"
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := Open(p, Options{})
		t.Logf("page %d garbled: Open: %v", pg, err)
		if err == nil {
			errs := useAll(d)
			t.Logf("  reads: %v", errs)
			d.Close()
			if len(errs) == 0 {
				t.Errorf("page %d garbled: every read succeeded; Check: %v", pg, Check(p))
			}
		} else if !errors.Is(err, errdefs.ErrDataLoss) && !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("page %d: Open = %v, want ErrDataLoss", pg, err)
		}
		if err := Check(p); err == nil {
			t.Errorf("page %d garbled: Check found nothing", pg)
		} else if !errors.Is(err, errdefs.ErrDataLoss) {
			t.Errorf("page %d: Check = %v, want ErrDataLoss", pg, err)
		}
	}
}

func TestCorruptRecordNamesKey(t *testing.T) {
	d, fc := testStore(t, Options{})
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	d.Close()
	rawUpdate(t, d.Path(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).Put([]byte(j.ID), []byte{codecJSON, '{', 'x'})
	})
	d, err := Open(d.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if _, err := d.Get(ctx, j.ID); !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), "jobs/"+j.ID) {
		t.Fatalf("Get of a corrupt record = %v, want ErrDataLoss naming jobs/%s", err, j.ID)
	}
	// Listings skip it and report it once: one bad record must not take
	// the scheduler's start, replctl jobs or a watch down.
	if act, err := d.Active(ctx); err != nil || len(act) != 0 {
		t.Fatalf("Active = %d jobs, %v; want the corrupt job skipped", len(act), err)
	}
	if got, _, _, err := d.List(ctx, Filter{}, 10, ""); err != nil || len(got) != 0 {
		t.Fatalf("List = %d jobs, %v; want the corrupt job skipped", len(got), err)
	}
	if n := d.CorruptRecords(); n != 1 {
		t.Fatalf("CorruptRecords = %d, want 1", n)
	}
	if _, err := d.Update(ctx, j.ID, setState(job.StateSubmitting)); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Fatalf("Update of a corrupt record = %v, want ErrDataLoss", err)
	}
}

// rawUpdate edits a closed state file directly with bbolt.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptFreelist garbles the freelist page, which bbolt reads inside
// Open: the panic is recovered, and the failed Open must not leave the file
// locked for the next attempt in this process.
func TestCorruptFreelist(t *testing.T) {
	path := populated(t, 400)
	b, _ := os.ReadFile(path)
	// Meta pages 0 and 1: freelist page id at byte 48, txid at byte 64
	// (bbolt's page header, then magic, version, page size, flags, root).
	meta := func(pg int) (freelist, txid uint64) {
		o := pg * 4096
		return binary.LittleEndian.Uint64(b[o+48:]), binary.LittleEndian.Uint64(b[o+64:])
	}
	fl, tx0 := meta(0)
	if fl1, tx1 := meta(1); tx1 > tx0 {
		fl = fl1
	}
	for i := int(fl) * 4096; i < int(fl+1)*4096; i++ {
		b[i] = byte(i * 7)
	}
	p := t.TempDir() + "/corrupt.db"
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		d, err := Open(p, Options{LockTimeout: 50 * time.Millisecond})
		if err == nil {
			d.Close()
			t.Fatalf("attempt %d: Open of a file with a garbled freelist succeeded", attempt)
		}
		if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), p) {
			t.Fatalf("attempt %d: Open = %v, want ErrDataLoss naming the file (not a lock error)", attempt, err)
		}
	}
	if err := Check(p); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Fatalf("Check = %v, want ErrDataLoss", err)
	}
}
