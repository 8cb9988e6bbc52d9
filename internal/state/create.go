package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// A state file is created whole or not at all: the layout is written to a
// temporary file in the same directory, synced, and hard-linked to the
// final name, which fails if the name exists. So a file found at the path
// is either one this package finished creating or not a state file at all:
// an empty file (a failed copy, a truncation, `touch`) or a bbolt file with
// no buckets is refused instead of being taken for a new store, which would
// silently drop the queued jobs and history it should have held.

// checkExisting refuses a file at path that cannot be a state file before
// bbolt sees it: bbolt would initialise an empty file as a new database,
// and fail read-only opens of one with "bad file descriptor". It returns
// false when nothing is at path.
func checkExisting(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case errors.Is(err, fs.ErrPermission):
		return true, fmt.Errorf("state file %s: %v: %w", path, err, errdefs.ErrPermissionDenied)
	case err != nil:
		return true, fmt.Errorf("state file %s: cannot stat: %v: %w", path, err, errdefs.ErrFailedPrecondition)
	case !fi.Mode().IsRegular():
		return true, fmt.Errorf("state file %s is not a regular file (%s): %w", path, fi.Mode().Type(), errdefs.ErrFailedPrecondition)
	case fi.Size() == 0:
		return true, fmt.Errorf("state file %s is empty (0 bytes), so it is not a replicatord state file; it was probably truncated or copied badly. "+
			"Restore it from a backup, or move it away to start with a new, empty state (replicatord then adopts its copies in ECS by their tags): %w",
			path, errdefs.ErrDataLoss)
	}
	return true, nil
}

// create makes a new state file at path with the layout of list, unless a
// file appears there meanwhile (another daemon's), which is then left to
// the caller to open.
func create(path string, opts Options, list []migration) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return fmt.Errorf("state file %s: cannot create: %v: %w", path, err, classifyFS(err))
	}
	name := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(name)
	if err := os.Chmod(name, 0o600); err != nil {
		return fmt.Errorf("state file %s: %v: %w", path, err, classifyFS(err))
	}
	// CreateTemp left an empty file, which bbolt initialises.
	bdb, err := openBolt(name, &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType}, opts.LockTimeout)
	if err != nil {
		return err
	}
	err = migrateFile(name, bdb, list, true)
	if cerr := bdb.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("state file %s: close after creating: %v: %w", path, cerr, errdefs.ErrUnavailable)
	}
	if err != nil {
		return err
	}
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another process created it first: open theirs
		}
		return fmt.Errorf("state file %s: cannot create: %v: %w", path, err, classifyFS(err))
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable
		_ = d.Close()
	}
	return nil
}

func classifyFS(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return errdefs.ErrPermissionDenied
	}
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.ErrNotFound
	}
	return errdefs.ErrFailedPrecondition
}
