package state

import (
	"context"
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

func TestCheckHealthy(t *testing.T) {
	d, fc := testStore(t, Options{HistoryLimit: 10})
	all := listFixture(t, d, fc, 40) // compaction has run too
	_ = all
	d.Close()
	if err := Check(d.Path()); err != nil {
		t.Fatalf("Check of a healthy file: %v", err)
	}
}

func TestCheckFindsLogicalDamage(t *testing.T) {
	d, fc := testStore(t, Options{})
	a, b := newJob(fc, "p", "m", "r"), newJob(fc, "p", "m", "r")
	mustCreate(t, d, a, b)
	if _, err := d.Update(context.Background(), b.ID, setState(job.StateFailed)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	rawUpdate(t, d.Path(), func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketIndex)
		if err := idx.Bucket(indexActive).Delete([]byte(a.ID)); err != nil { // lost entry
			return err
		}
		if err := idx.Bucket(indexActive).Put([]byte(b.ID), []byte{}); err != nil { // stale entry
			return err
		}
		return tx.Bucket(bucketEvents).Delete(revKey(2)) // hole in the history
	})
	err := Check(d.Path())
	if !errors.Is(err, errdefs.ErrDataLoss) {
		t.Fatalf("Check = %v, want ErrDataLoss", err)
	}
	for _, want := range []string{
		`"active/` + a.ID + `" is missing`,
		`"active/` + b.ID + `" has no matching job`,
		"expected revision 2, found 3",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error does not report %q:\n%v", want, err)
		}
	}
}

func TestCheckMissingFile(t *testing.T) {
	path := t.TempDir() + "/nope.db"
	if err := Check(path); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Check of a missing file = %v", err)
	}
}
