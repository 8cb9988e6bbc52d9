package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// DB is the bbolt implementation of Store. Its methods are safe for
// concurrent use.
type DB struct {
	path string
	opts Options
	bolt *bolt.DB

	// rev is the revision of the last committed change.
	rev atomic.Int64

	reqs       chan *request
	stop       chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
	closed     atomic.Bool

	// wmu guards published and watchers; the writer publishes under it.
	wmu       sync.Mutex
	published int64
	watchers  map[*watcher]struct{}
	watchWG   sync.WaitGroup

	// cmu guards corrupt: the keys of undecodable records met by reads.
	cmu     sync.Mutex
	corrupt map[string]bool

	// hookLive, when set by a test, runs when a watcher starts receiving
	// live events.
	hookLive func()
}

var _ Store = (*DB)(nil)

// errStop ends a bbolt ForEach early.
var errStop = errors.New("stop")

// Open opens the state file at path, or creates it (mode 0600) when
// nothing is there, migrates its layout in one transaction if it is older,
// and starts the writer. It fails quickly with errdefs.ErrUnavailable when
// another process holds the file, with errdefs.ErrFailedPrecondition when
// the file's schema is newer than this build's or the file is a bbolt
// database of another program, and with errdefs.ErrDataLoss when the file
// is empty, not a bbolt database, or corrupt. An existing file is never
// taken for a new store (see create.go).
func Open(path string, opts Options) (*DB, error) {
	return open(path, opts, migrations)
}

func open(path string, opts Options, list []migration) (*DB, error) {
	if path == "" {
		return nil, errdefs.Invalid("state_file", "path is empty")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	exists, err := checkExisting(path)
	if err != nil {
		return nil, err
	}
	if !exists {
		if err := create(path, opts, list); err != nil {
			return nil, err
		}
		if _, err := checkExisting(path); err != nil {
			return nil, err
		}
	}
	bdb, err := openBolt(path, &bolt.Options{
		Timeout: opts.LockTimeout,
		// NoFreelistSync stays off and NoSync is never set: see
		// "Durability" in doc.go.
		FreelistType: bolt.FreelistMapType,
	}, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	d := &DB{
		path:       path,
		opts:       opts,
		bolt:       bdb,
		reqs:       make(chan *request),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
		watchers:   make(map[*watcher]struct{}),
	}
	if err := d.init(list); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	go d.writer()
	return d, nil
}

// init migrates the layout and loads the revisions. It is the first use of
// the file's pages, so it is guarded against bbolt panics like reads are.
func (d *DB) init(list []migration) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("state file %s is corrupt (bbolt failed reading it: %v): %w", d.path, p, errdefs.ErrDataLoss)
		}
	}()
	if err := migrateFile(d.path, d.bolt, list, false); err != nil {
		return err
	}
	return d.bolt.View(func(tx *bolt.Tx) error {
		rev, compacted, err := readRevisions(d.path, tx)
		if err != nil {
			return err
		}
		if compacted > rev {
			return fmt.Errorf("state file %s: compacted_revision %d is above revision %d: %w", d.path, compacted, rev, errdefs.ErrDataLoss)
		}
		// The newest event must be the current revision: a cheap check that
		// meta and events agree before anything is built on them.
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			last, err := readU64("state file "+d.path+": events key", k)
			if err != nil {
				return err
			}
			if last != rev {
				return fmt.Errorf("state file %s: newest event has revision %d but meta/revision is %d: %w", d.path, last, rev, errdefs.ErrDataLoss)
			}
		}
		d.rev.Store(rev)
		d.published = rev
		return nil
	})
}

// openBolt opens the bbolt file, turning every failure (including a panic
// on a corrupt file) into a clear error naming the path.
func openBolt(path string, bo *bolt.Options, lockTimeout time.Duration) (db *bolt.DB, err error) {
	// Keep the file handle: if bbolt panics half way through Open, the
	// handle (and its flock) would otherwise leak.
	var f *os.File
	bo.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, mode)
		return f, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if f != nil {
				_ = f.Close()
			}
			releaseMappings(path)
			db, err = nil, fmt.Errorf("state file %s is corrupt (bbolt failed opening it: %v): %w", path, p, errdefs.ErrDataLoss)
		}
	}()
	db, err = bolt.Open(path, 0o600, bo)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("state file %s is in use by another process (bbolt lock not acquired within %s): %w",
			path, lockTimeout, errdefs.ErrUnavailable)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch),
		strings.Contains(err.Error(), "file size too small"): // bbolt has no sentinel for this one
		return nil, fmt.Errorf("state file %s is not a bbolt database or its header is corrupt (%v): %w", path, err, errdefs.ErrDataLoss)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("state file %s: %v: %w", path, err, errdefs.ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("state file %s: %v: %w", path, err, errdefs.ErrPermissionDenied)
	default:
		return nil, fmt.Errorf("state file %s: cannot open: %v: %w", path, err, errdefs.ErrFailedPrecondition)
	}
}

func readRevisions(path string, tx *bolt.Tx) (rev, compacted int64, err error) {
	meta := tx.Bucket(bucketMeta)
	if rev, err = readU64("state file "+path+": meta/revision", meta.Get(keyRevision)); err != nil {
		return 0, 0, err
	}
	compacted, err = readU64("state file "+path+": meta/compacted_revision", meta.Get(keyCompactedRevision))
	return rev, compacted, err
}

// Path returns the state file's path.
func (d *DB) Path() string { return d.path }

// Revision returns the revision of the last committed change.
func (d *DB) Revision() int64 { return d.rev.Load() }

func (d *DB) errClosed() error {
	return fmt.Errorf("state store %s is closed: %w", d.path, errdefs.ErrUnavailable)
}

// view runs fn in a read transaction, turning a bbolt panic or fault on a
// corrupt page into errdefs.ErrDataLoss.
func (d *DB) view(fn func(tx *bolt.Tx) error) (err error) {
	if d.closed.Load() {
		return d.errClosed()
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("state file %s is corrupt (bbolt failed reading it: %v): %w", d.path, p, errdefs.ErrDataLoss)
		}
	}()
	err = d.bolt.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return d.errClosed()
	}
	return err
}

// Get returns one job, or errdefs.ErrNotFound.
func (d *DB) Get(ctx context.Context, id string) (*job.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var j *job.Job
	err := d.view(func(tx *bolt.Tx) error {
		var err error
		j, err = getJob(tx, id)
		return err
	})
	return j, err
}

func getJob(tx *bolt.Tx, id string) (*job.Job, error) {
	v := tx.Bucket(bucketJobs).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("job %q: %w", id, errdefs.ErrNotFound)
	}
	return decodeJob("jobs/"+id, v)
}

// Close stops the writer (updates already accepted are committed and
// answered first), ends every watcher and closes the file. It is
// idempotent; every method called after it fails with errdefs.ErrUnavailable.
func (d *DB) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		close(d.stop)
		<-d.writerDone
		d.endWatchers()
		// Watch adds to watchWG under wmu after checking closed; taking
		// wmu here orders every such Add before Wait.
		d.wmu.Lock()
		//lint:ignore SA2001 the empty critical section is the point: it orders Watch's Add before Wait.
		d.wmu.Unlock()
		d.watchWG.Wait()
		err = d.bolt.Close()
		if err != nil {
			err = fmt.Errorf("state file %s: close: %v: %w", d.path, err, errdefs.ErrInternal)
		}
	})
	return err
}
