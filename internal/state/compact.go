package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// compactTxSize bounds one transaction of the copy, so a large file is
// copied in steps instead of in one transaction held in memory.
const compactTxSize = 64 << 20

// Compact rewrites the state file at path with bbolt's Compact, which
// copies every key into a fresh file with full pages, so the space freed by
// removed jobs and compacted events goes back to the filesystem. It is
// offline: it fails with errdefs.ErrUnavailable, changing nothing, while a
// daemon holds the file. The file must pass Check first (copying a damaged
// file would carry the damage over, or crash); the copy is checked too, then
// renamed over the original, so at any instant path holds either the old
// file or the complete new one. It returns the sizes before and after.
func Compact(path string) (before, after int64, err error) {
	if path == "" {
		return 0, 0, errdefs.Invalid("state_file", "path is empty")
	}
	if err := Check(path); err != nil {
		if errors.Is(err, errdefs.ErrUnavailable) {
			return 0, 0, fmt.Errorf("%w; stop the daemon before compacting", err)
		}
		return 0, 0, fmt.Errorf("not compacting: %w", err)
	}
	// Hold the file's exclusive lock for the whole copy and rename, so no
	// daemon starts on it meanwhile.
	src, err := openBolt(path, &bolt.Options{Timeout: defaultLockTimeout, FreelistType: bolt.FreelistMapType}, defaultLockTimeout)
	if err != nil {
		if errors.Is(err, errdefs.ErrUnavailable) {
			return 0, 0, fmt.Errorf("%w; stop the daemon before compacting", err)
		}
		return 0, 0, err
	}
	defer src.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("state file %s: %v: %w", path, err, errdefs.ErrUnavailable)
	}
	before = fi.Size()

	dir := filepath.Dir(path)
	tmpf, err := os.CreateTemp(dir, filepath.Base(path)+".compact-*")
	if err != nil {
		return 0, 0, fmt.Errorf("state file %s: cannot create the compacted copy in %s: %v: %w", path, dir, err, errdefs.ErrUnavailable)
	}
	tmp := tmpf.Name()
	_ = tmpf.Close()
	done := false
	defer func() {
		if !done {
			_ = os.Remove(tmp)
		}
	}()
	if err := copyCompacted(path, tmp, src, fi.Mode().Perm()); err != nil {
		return 0, 0, err
	}
	if err := Check(tmp); err != nil {
		return 0, 0, fmt.Errorf("state file %s: the compacted copy failed its check, the original is untouched: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, 0, fmt.Errorf("state file %s: cannot replace it with the compacted copy: %v: %w", path, err, errdefs.ErrUnavailable)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return 0, 0, fmt.Errorf("state file %s: compacted, but syncing %s failed: %v: %w", path, dir, err, errdefs.ErrUnavailable)
	}
	if fi, err := os.Stat(path); err == nil {
		after = fi.Size()
	}
	return before, after, nil
}

// copyCompacted writes src's keys into a new bbolt file at tmp.
func copyCompacted(path, tmp string, src *bolt.DB, perm os.FileMode) (err error) {
	dst, err := bolt.Open(tmp, perm, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("state file %s: cannot open the compacted copy %s: %v: %w", path, tmp, err, errdefs.ErrUnavailable)
	}
	defer func() {
		if cerr := dst.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("state file %s: closing the compacted copy: %v: %w", path, cerr, errdefs.ErrUnavailable)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("state file %s is corrupt (bbolt failed copying it: %v): %w", path, p, errdefs.ErrDataLoss)
		}
	}()
	if err := bolt.Compact(dst, src, compactTxSize); err != nil {
		return fmt.Errorf("state file %s: compaction failed, the original is untouched: %v: %w", path, err, errdefs.ErrUnavailable)
	}
	// bolt.Open created the file with perm minus the umask; make it exact.
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("state file %s: %v: %w", path, err, errdefs.ErrUnavailable)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
