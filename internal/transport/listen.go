package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrInUse means another live process already serves the address.
var ErrInUse = errors.New("address in use by a running daemon")

// maxSocketPath is the usable length of sun_path on Linux (108 bytes
// including the terminating NUL).
const maxSocketPath = 107

// Listen opens the endpoint's listener after validating cfg, so a
// misconfigured TCP endpoint is refused before anything binds.
func Listen(cfg ServerConfig) (net.Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ep, err := cfg.Endpoint()
	if err != nil {
		return nil, err
	}
	if ep.IsUnix() {
		return listenUnix(ep.Address)
	}
	l, err := net.Listen("tcp", ep.Address)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on %s: %w", ep.Address, ErrInUse)
		}
		return nil, fmt.Errorf("listen on %s: %w", ep.Address, err)
	}
	return l, nil
}

// listenUnix binds path with mode 0600 and no window in which it is more
// open: the socket is bound inside a fresh 0700 directory next to path,
// chmodded, then hard-linked into place. link(2) fails if path exists, so a
// daemon starting concurrently cannot be silently replaced.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
		}
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmpDir, err := os.MkdirTemp(dir, ".rs")
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: create private directory in %s: %w", path, dir, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > maxSocketPath || len(path) > maxSocketPath {
		return nil, fmt.Errorf("unix socket path %s is too long: at most %d bytes fit, counting a %d-byte private directory used while binding", path, maxSocketPath-(len(tmp)-len(path)), len(tmp)-len(path))
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	// The name the listener was bound to disappears with tmpDir; Close
	// removes the final name itself.
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		return nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(fmt.Errorf("unix socket %s: chmod 0600: %w", path, err))
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(fmt.Errorf("unix socket %s: %w (it appeared while binding)", path, ErrInUse))
		}
		// A filesystem without hard links: rename is atomic but replaces.
		if err := os.Rename(tmp, path); err != nil {
			return fail(fmt.Errorf("unix socket %s: move into place: %w", path, err))
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("unix socket %s: %w", path, err))
	}
	return &unixListener{UnixListener: l, path: path, fi: fi}, nil
}

// removeStale removes a socket left behind by a process that is gone. It
// proves that by dialling: refused means nobody listens.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unix socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("unix socket %s: refusing to replace it: the path exists and is not a socket (%v)", path, fi.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("unix socket %s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("unix socket %s: cannot tell whether a daemon still listens on it: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unix socket %s: remove stale socket: %w", path, err)
	}
	return nil
}

// unixListener removes its socket on Close, but only while the path still
// names the socket it created: a successor's socket is left alone.
type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if cur, serr := os.Lstat(l.path); serr == nil && os.SameFile(cur, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}
