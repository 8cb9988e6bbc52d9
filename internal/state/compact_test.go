package state

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// noLeftovers fails if a compaction left a temporary file beside path.
func noLeftovers(t *testing.T, path string) {
	t.Helper()
	left, _ := filepath.Glob(path + ".compact-*")
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestCompactShrinksAndKeepsJobs: a file whose finished jobs were removed
// shrinks, and every remaining job, the revision and the retained history
// survive intact.
func TestCompactShrinksAndKeepsJobs(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx := context.Background()
	pad := strings.Repeat("x", 2000) // make each record a few KiB, as real jobs with messages are
	var batch []*job.Job
	for i := range 600 {
		j := newJob(fc, "", "m-"+string(rune('a'+i%26)), "r1")
		j.Tags["note"] = pad
		batch = append(batch, j)
	}
	mustCreate(t, d, batch...)
	for _, j := range batch[:580] {
		finish(t, d, j.ID, job.StateCancelled)
	}
	fc.Step(2 * day)
	keep := batch[580:]
	finish(t, d, keep[0].ID, job.StateFailed) // a recent finished job stays
	n, err := d.RemoveFinished(ctx, fc.Now().Add(-day), MaxRemoveBatch)
	if err != nil || n != 580 {
		t.Fatalf("RemoveFinished: %d, %v", n, err)
	}
	want := map[string]*job.Job{}
	for _, j := range keep {
		got, err := d.Get(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		want[j.ID] = got
	}
	rev := d.Revision()
	path := d.Path()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	before, after, err := Compact(path)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if after != fileSize(t, path) {
		t.Errorf("Compact reported %d -> %d, the file is %d", before, after, fileSize(t, path))
	}
	if after*3 > before {
		t.Errorf("file went from %d to %d bytes; with 580 of 600 jobs removed it should shrink to under a third", before, after)
	}
	noLeftovers(t, path)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := Check(path); err != nil {
		t.Fatalf("Check after Compact: %v", err)
	}
	d2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if d2.Revision() != rev {
		t.Errorf("revision %d after Compact, want %d", d2.Revision(), rev)
	}
	all := listAll(t, d2, Filter{}, 7)
	if len(all) != len(keep) {
		t.Fatalf("%d jobs after Compact, want %d", len(all), len(keep))
	}
	for _, j := range all {
		if !reflect.DeepEqual(j, want[j.ID]) {
			t.Errorf("job %s changed by Compact:\n got %+v\nwant %+v", j.ID, j, want[j.ID])
		}
	}
	if active, err := d2.Active(ctx); err != nil || len(active) != len(keep)-1 {
		t.Errorf("Active after Compact: %d, %v; want %d", len(active), err, len(keep)-1)
	}
	// The store goes on writing to the compacted file.
	if _, err := d2.Update(ctx, keep[1].ID, setState(job.StateCancelled)); err != nil {
		t.Fatalf("Update after Compact: %v", err)
	}
}

// TestCompactRefusesOpenFile: while a store holds the file, Compact
// changes nothing and says to stop the daemon.
func TestCompactRefusesOpenFile(t *testing.T) {
	d, fc := testStore(t, Options{})
	mustCreate(t, d, newJob(fc, "p", "m", "r"))
	orig, err := os.ReadFile(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Compact(d.Path())
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "stop the daemon") || !strings.Contains(err.Error(), d.Path()) {
		t.Fatalf("Compact of an open file: %v, want Unavailable naming the file and saying to stop the daemon", err)
	}
	now, err := os.ReadFile(d.Path())
	if err != nil || !bytes.Equal(now, orig) {
		t.Errorf("refused Compact changed the file (%v)", err)
	}
	noLeftovers(t, d.Path())
}

// TestCompactRefusesDamagedFile: a file that fails Check is left as it is.
func TestCompactRefusesDamagedFile(t *testing.T) {
	d, fc := testStore(t, Options{})
	a := newJob(fc, "p", "m", "r")
	mustCreate(t, d, a)
	d.Close()
	rawUpdate(t, d.Path(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndex).Bucket(indexActive).Delete([]byte(a.ID))
	})
	orig, _ := os.ReadFile(d.Path())
	_, _, err := Compact(d.Path())
	if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), "not compacting") {
		t.Fatalf("Compact of a damaged file: %v, want DataLoss", err)
	}
	if now, _ := os.ReadFile(d.Path()); !bytes.Equal(now, orig) {
		t.Error("refused Compact changed the damaged file")
	}
	noLeftovers(t, d.Path())
	if _, _, err := Compact(filepath.Join(t.TempDir(), "missing.db")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Compact of a missing file: %v, want NotFound", err)
	}
	if _, _, err := Compact(""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Compact(\"\"): %v", err)
	}
}
