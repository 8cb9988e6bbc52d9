package state

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// A garbage record written into a real file is skipped by List, Active,
// Watch and CreateRequest, reported once, and found by Scan and Check.
func TestCorruptRecordsSkippedAndReported(t *testing.T) {
	var mu sync.Mutex
	var reported []string
	onCorrupt := func(key string, err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, key)
	}
	d, fc := testStore(t, Options{})
	good, bad := newJob(fc, "p", "m-src", "cn-beijing"), newJob(fc, "p", "m-src", "cn-beijing")
	mustCreate(t, d, good, bad) // revisions 1 and 2
	d.Close()
	rawUpdate(t, d.Path(), func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketJobs).Put([]byte(bad.ID), []byte("\x01{garbage")); err != nil {
			return err
		}
		return tx.Bucket(bucketEvents).Put(revKey(2), []byte("\x07???"))
	})
	d, err := Open(d.Path(), Options{OnCorrupt: onCorrupt})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for name, f := range map[string]Filter{"all": {}, "policy": {Policy: "p"}, "image": {SourceImageID: "m-src"}, "active": {States: []job.State{job.StateQueued}}} {
		got, _, _, err := d.List(ctx, f, 10, "")
		if err != nil || len(got) != 1 || got[0].ID != good.ID {
			t.Errorf("List(%s) = %d jobs, %v; want only the good one", name, len(got), err)
		}
	}
	if act, err := d.Active(ctx); err != nil || len(act) != 1 || act[0].ID != good.ID {
		t.Errorf("Active = %d jobs, %v", len(act), err)
	}
	w, err := d.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ev := <-w.Events()
	if ev.Revision != 1 || ev.Job.ID != good.ID {
		t.Fatalf("first event %d %s", ev.Revision, ev.Job.ID)
	}
	// The bad event is skipped and the watch goes live: a new change arrives.
	later := newJob(fc, "p", "m-other", "cn-beijing")
	mustCreate(t, d, later)
	if ev := <-w.Events(); ev.Revision != 3 || ev.Job.ID != later.ID {
		t.Fatalf("after the bad event: %d %s, want revision 3", ev.Revision, ev.Job.ID)
	}
	w.Close()
	// CreateRequest's reuse lookup passes over it.
	if _, err := d.CreateRequest(ctx, &Request{Jobs: []*job.Job{newJob(fc, "", "m-src", "cn-beijing")}, Reuse: func(_, _ *job.Job) bool { return false }}); err != nil {
		t.Fatalf("CreateRequest beside a corrupt record: %v", err)
	}
	records, corrupt, err := d.Scan(ctx)
	if err != nil || corrupt != 2 || records < 6 {
		t.Fatalf("Scan = %d records, %d corrupt, %v", records, corrupt, err)
	}
	mu.Lock()
	got := strings.Join(reported, " ")
	mu.Unlock()
	if len(reported) != 2 || !strings.Contains(got, "jobs/"+bad.ID) || !strings.Contains(got, "events/2") {
		t.Errorf("reported %q, want jobs/%s and events/2 once each", got, bad.ID)
	}
	if d.CorruptRecords() != 2 {
		t.Errorf("CorruptRecords = %d", d.CorruptRecords())
	}
	d.Close()
	err = Check(d.Path())
	if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), "jobs/"+bad.ID) || !strings.Contains(err.Error(), "events/2") {
		t.Errorf("Check = %v, want both records named", err)
	}
}

// An empty file, or a bbolt file with no buckets, is refused and left as
// it is; it is never taken for a new store.
func TestEmptyFilesRefused(t *testing.T) {
	dir := t.TempDir()
	empty := dir + "/empty.db"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(empty, Options{})
	if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), "empty (0 bytes)") || !strings.Contains(err.Error(), empty) {
		t.Fatalf("Open of a 0-byte file = %v", err)
	}
	if fi, _ := os.Stat(empty); fi.Size() != 0 {
		t.Fatalf("Open wrote %d bytes into the empty file", fi.Size())
	}
	if err := Check(empty); err == nil || !strings.Contains(err.Error(), "empty (0 bytes)") || strings.Contains(err.Error(), "bad file descriptor") {
		t.Fatalf("Check of a 0-byte file = %v", err)
	}

	bare := dir + "/bare.db"
	db, err := bolt.Open(bare, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := fileHash(t, bare)
	if _, err := Open(bare, Options{}); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "no buckets") {
		t.Fatalf("Open of a bbolt file with no buckets = %v", err)
	}
	if fileHash(t, bare) != before {
		t.Fatal("Open changed the bucketless bbolt file")
	}
	if err := Check(bare); err == nil || !strings.Contains(err.Error(), "no buckets") {
		t.Fatalf("Check of a bbolt file with no buckets = %v", err)
	}

	// A new file is made whole: no temporary file is left beside it.
	d, err := Open(dir+"/new.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".new-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if err := Check(dir + "/new.db"); err != nil {
		t.Fatalf("Check of a new file: %v", err)
	}
}
