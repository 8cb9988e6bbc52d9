package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// migrationTests holds one test per entry of migrations, in order: each
// prepares a file at the schema before the migration and checks it after.
var migrationTests = []struct {
	name    string
	prepare func(t *testing.T, tx *bolt.Tx)
	check   func(t *testing.T, tx *bolt.Tx)
}{
	{
		name:    "initial layout",
		prepare: nil, // no file: Open creates it
		check: func(t *testing.T, tx *bolt.Tx) {
			for _, b := range [][]byte{bucketMeta, bucketJobs, bucketEvents, bucketIndex} {
				if tx.Bucket(b) == nil {
					t.Errorf("bucket %s missing", b)
				}
			}
			for _, b := range indexNames {
				if tx.Bucket(bucketIndex).Bucket(b) == nil {
					t.Errorf("bucket index/%s missing", b)
				}
			}
			if rev, compacted, err := readRevisions("", tx); err != nil || rev != 0 || compacted != 0 {
				t.Errorf("revisions %d/%d, %v", rev, compacted, err)
			}
		},
	},
	{
		name: "requests bucket",
		prepare: func(t *testing.T, tx *bolt.Tx) {
			// A version-1 file with a job in it.
			if err := tx.Bucket(bucketJobs).Put([]byte("j-1"), []byte{codecJSON, '{', '}'}); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, tx *bolt.Tx) {
			if tx.Bucket(bucketRequests) == nil {
				t.Errorf("bucket requests missing")
			}
			if tx.Bucket(bucketJobs).Get([]byte("j-1")) == nil {
				t.Errorf("the job was lost by the migration")
			}
		},
	},
	{
		name: "cancel tombstones",
		prepare: func(t *testing.T, tx *bolt.Tx) {
			if tx.Bucket(bucketTombs) != nil {
				t.Errorf("bucket %s exists before its migration", bucketTombs)
			}
		},
		check: func(t *testing.T, tx *bolt.Tx) {
			if tx.Bucket(bucketTombs) == nil {
				t.Errorf("bucket %s missing", bucketTombs)
			}
			if tx.Bucket(bucketJobs) == nil {
				t.Errorf("bucket %s gone", bucketJobs)
			}
		},
	},
}

func TestEveryMigrationHasATest(t *testing.T) {
	if len(migrationTests) != len(migrations) {
		t.Fatalf("%d migrations but %d migration tests: add a test for each migration", len(migrations), len(migrationTests))
	}
	for i, m := range migrations {
		if m.version != int64(i+1) || migrationTests[i].name != m.name {
			t.Fatalf("migration %d is version %d %q, test %q: keep them ordered and matched", i, m.version, m.name, migrationTests[i].name)
		}
	}
}

func TestMigrations(t *testing.T) {
	for i, mt := range migrationTests {
		t.Run(mt.name, func(t *testing.T) {
			path := t.TempDir() + "/state.db"
			if mt.prepare != nil {
				rawUpdate(t, path, func(tx *bolt.Tx) error {
					if err := runTo(tx, migrations[:i]); err != nil {
						return err
					}
					mt.prepare(t, tx)
					return nil
				})
			}
			d, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			d.Close()
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_ = db.View(func(tx *bolt.Tx) error {
				if v, err := readSchemaVersion(path, tx); err != nil || v != schemaVersion() {
					t.Errorf("schema version %d, %v; want %d", v, err, schemaVersion())
				}
				mt.check(t, tx)
				return nil
			})
		})
	}
}

// runTo applies list and records its last version, as migrate does.
func runTo(tx *bolt.Tx, list []migration) error {
	for _, m := range list {
		if err := m.migrate(tx); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchemaVersion, u64(uint64(list[len(list)-1].version)))
}

// TestOlderSchemaMigrates runs the mechanism with a fake second migration
// on a version-1 file with data: the step must run once, in one
// transaction, and keep the data.
func TestOlderSchemaMigrates(t *testing.T) {
	d, fc := testStore(t, Options{})
	j := newJob(fc, "p", "m", "r")
	mustCreate(t, d, j)
	d.Close()

	calls := 0
	next := schemaVersion() + 1
	fake := append(append([]migration(nil), migrations...), migration{
		version: next, name: "fake: add a bucket",
		migrate: func(tx *bolt.Tx) error {
			calls++
			_, err := tx.CreateBucket([]byte("fake"))
			return err
		},
	})
	d2, err := open(d.Path(), Options{}, fake)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d2.Get(context.Background(), j.ID); err != nil || got.Revision != 1 {
		t.Fatalf("job after migration: %+v, %v", got, err)
	}
	_ = d2.bolt.View(func(tx *bolt.Tx) error {
		if v, _ := readSchemaVersion("", tx); v != next || tx.Bucket([]byte("fake")) == nil {
			t.Errorf("after migration: version %d, fake bucket %v", v, tx.Bucket([]byte("fake")) != nil)
		}
		return nil
	})
	d2.Close()
	// Opening again runs nothing.
	d3, err := open(d.Path(), Options{}, fake)
	if err != nil {
		t.Fatal(err)
	}
	d3.Close()
	if calls != 1 {
		t.Fatalf("fake migration ran %d times, want 1", calls)
	}
	// And this build now refuses the file.
	if _, err := Open(d.Path(), Options{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Open of a newer file by this build = %v", err)
	}
}

// TestFailedMigrationChangesNothing: the migrations and the version bump
// share one transaction, so a failing step leaves the file as it was.
func TestFailedMigrationChangesNothing(t *testing.T) {
	d, _ := testStore(t, Options{})
	d.Close()
	before := fileHash(t, d.Path())
	v := schemaVersion()
	fake := append(append([]migration(nil), migrations...),
		migration{version: v + 1, name: "adds a bucket", migrate: func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("half"))
			return err
		}},
		migration{version: v + 2, name: "fails", migrate: func(tx *bolt.Tx) error { return errors.New("disk says no") }},
	)
	_, err := open(d.Path(), Options{}, fake)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("migration to schema version %d (fails)", v+2)) {
		t.Fatalf("open = %v, want the failing migration named", err)
	}
	if fileHash(t, d.Path()) != before {
		t.Fatal("a failed migration changed the file")
	}
}
