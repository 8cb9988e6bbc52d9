package state

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// Bucket and key names; the layout is drawn in doc.go.
var (
	bucketMeta   = []byte("meta")
	bucketJobs   = []byte("jobs")
	bucketEvents = []byte("events")
	bucketIndex  = []byte("index")
	// bucketRequests holds the records of API requests with a client
	// request id (requests.go).
	bucketRequests = []byte("requests")
	// bucketTombs holds the cancel tombstones (writer.go, keepTombstone).
	bucketTombs = []byte("tombstones")

	indexActive = []byte("active")
	indexState  = []byte("state")
	indexPolicy = []byte("policy")
	indexImage  = []byte("image")
	indexRegion = []byte("region")

	keySchemaVersion     = []byte("schema_version")
	keyRevision          = []byte("revision")
	keyCompactedRevision = []byte("compacted_revision")
)

// migration brings a file from schema version-1 to version.
type migration struct {
	version int64
	name    string
	migrate func(tx *bolt.Tx) error
}

// migrations MUST be ordered by version, one step each, and each MUST have
// a test in migrations_test.go (a test checks the counts match). A file's
// pending migrations run in ONE transaction with the new schema_version, so
// a crash during migration leaves the file as it was.
var migrations = []migration{
	{version: 1, name: "initial layout", migrate: migrateInitial},
	{version: 2, name: "requests bucket", migrate: migrateRequests},
	{version: 3, name: "cancel tombstones", migrate: migrateTombstones},
}

func migrateTombstones(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bucketTombs)
	return err
}

// schemaVersion is the newest layout this build reads and writes.
func schemaVersion() int64 { return migrations[len(migrations)-1].version }

func migrateInitial(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketJobs, bucketEvents} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	idx, err := tx.CreateBucketIfNotExists(bucketIndex)
	if err != nil {
		return err
	}
	for _, name := range [][]byte{indexActive, indexState, indexPolicy, indexImage, indexRegion} {
		if _, err := idx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	for _, k := range [][]byte{keyRevision, keyCompactedRevision} {
		if meta.Get(k) == nil {
			if err := meta.Put(k, u64(0)); err != nil {
				return err
			}
		}
	}
	return nil
}

// migrateRequests adds the bucket of request records (idempotent Copy).
func migrateRequests(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bucketRequests)
	return err
}

func errEmptyBolt(path string) error {
	return fmt.Errorf("state file %s is a bbolt database with no buckets, not a replicatord state file (replicatord creates its files whole, so this one was made by something else); "+
		"move it away to start with a new, empty state: %w", path, errdefs.ErrFailedPrecondition)
}

// readSchemaVersion returns the file's schema version: 0 for a new, empty
// bbolt file. It refuses a bbolt file that some other program wrote.
func readSchemaVersion(path string, tx *bolt.Tx) (int64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		var foreign []byte
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			foreign = append([]byte(nil), name...)
			return errStop
		})
		if foreign != nil {
			return 0, fmt.Errorf("state file %s is a bbolt database but not a replicatord state file (it has bucket %q and no meta bucket): %w",
				path, foreign, errdefs.ErrFailedPrecondition)
		}
		return 0, nil
	}
	v := meta.Get(keySchemaVersion)
	if v == nil {
		return 0, fmt.Errorf("state file %s: meta bucket has no schema_version: %w", path, errdefs.ErrDataLoss)
	}
	return readU64("state file "+path+": meta/schema_version", v)
}

// migrateFile runs every migration newer than the file's version in one
// transaction. It refuses, without writing, a file newer than list knows,
// and, unless creating (the file was just made by create), a bbolt file
// without replicatord's layout.
func migrateFile(path string, db *bolt.DB, list []migration, creating bool) error {
	var have int64
	if err := db.View(func(tx *bolt.Tx) error {
		var err error
		have, err = readSchemaVersion(path, tx)
		return err
	}); err != nil {
		return err
	}
	if have == 0 && !creating {
		return errEmptyBolt(path)
	}
	want := list[len(list)-1].version
	if have > want {
		return fmt.Errorf("state file %s has schema version %d, this replicatord supports up to %d (downgrade is not supported; use the newer replicatord): %w",
			path, have, want, errdefs.ErrFailedPrecondition)
	}
	if have == want {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		for _, m := range list {
			if m.version <= have {
				continue
			}
			if err := m.migrate(tx); err != nil {
				return fmt.Errorf("state file %s: migration to schema version %d (%s): %w", path, m.version, m.name, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, u64(uint64(want)))
	})
}
