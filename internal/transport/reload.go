package transport

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval is how often, at most, the server looks at its
// certificate, key, client CA and token files for a change.
const DefaultReloadInterval = 10 * time.Second

// Reload kinds passed to ServerConfig.OnReload.
const (
	ReloadTLS    = "tls"    // the server certificate, its key and the client CA
	ReloadTokens = "tokens" // the token file
)

// reloader holds material loaded from files and loads it again when their
// contents change. It has no goroutine: get checks the files at most once
// per interval, when the material is used (a TLS handshake, an
// authenticated call), so a server with no traffic reads nothing and there
// is nothing to stop. The check compares a SHA-256 of the files' contents,
// not their mtimes, because Kubernetes updates a mounted Secret by swapping
// a symlink to a new directory, which keeps no mtime meaningful, and a
// rewrite within the same second must not be missed. A change that does not
// load (a half-written pair, a token file with a bad line) keeps the old
// material and is reported once per distinct content; the next change is
// tried again.
type reloader[T any] struct {
	kind     string
	paths    []string
	roles    []string // what each path is, for messages: "server certificate"
	prefix   string   // starts every message: "tls", "token file"
	load     func(data [][]byte) (T, error)
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger
	onReload func(kind string, err error)

	cur atomic.Pointer[T]

	mu      sync.Mutex // held while checking; TryLock so no caller waits
	sum     [sha256.Size]byte
	checked time.Time
}

// newReloader loads the files once; an error here is a configuration error
// and fails the start.
func newReloader[T any](r *reloader[T]) (*reloader[T], error) {
	if r.now == nil {
		r.now = time.Now
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	load := r.load
	data, sum, err := r.read()
	if err != nil {
		return nil, err
	}
	v, err := load(data)
	if err != nil {
		return nil, err
	}
	r.cur.Store(&v)
	r.sum, r.checked = sum, r.now()
	return r, nil
}

func (r *reloader[T]) read() ([][]byte, [sha256.Size]byte, error) {
	h := sha256.New()
	data := make([][]byte, len(r.paths))
	for i, p := range r.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("%s: cannot load %s %s: %w", r.prefix, r.roles[i], p, err)
		}
		data[i] = b
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return data, sum, nil
}

// get returns the current material, first reloading it if the interval has
// passed and the files changed. Only one caller checks at a time; the
// others use the material they find.
func (r *reloader[T]) get() T {
	if r.mu.TryLock() {
		if now := r.now(); now.Sub(r.checked) >= r.interval {
			r.checked = now
			r.check()
		}
		r.mu.Unlock()
	}
	return *r.cur.Load()
}

// check runs with r.mu held.
func (r *reloader[T]) check() {
	data, sum, err := r.read()
	if err != nil {
		// Mid-swap a file can be missing for an instant: keep the old
		// material, say so once, and look again next interval.
		if r.sum != ([sha256.Size]byte{}) {
			r.report(err)
		}
		r.sum = [sha256.Size]byte{}
		return
	}
	if sum == r.sum {
		return
	}
	r.sum = sum
	v, err := r.load(data)
	if err != nil {
		r.report(err)
		return
	}
	r.cur.Store(&v)
	r.logger.Info("reloaded "+r.kind+" from disk", "files", r.paths)
	if r.onReload != nil {
		r.onReload(r.kind, nil)
	}
}

func (r *reloader[T]) report(err error) {
	r.logger.Error("cannot reload "+r.kind+"; still using the previous one", "error", err.Error())
	if r.onReload != nil {
		r.onReload(r.kind, err)
	}
}

// loadServerTLS builds what a handshake needs, swapped whole on reload so
// that a certificate never pairs with another generation's client CA.
func loadServerTLS(cfg ServerConfig) func([][]byte) (*tls.Config, error) {
	return func(data [][]byte) (*tls.Config, error) {
		cert, err := tls.X509KeyPair(data[0], data[1])
		if err != nil {
			return nil, fmt.Errorf("tls: cannot load server certificate %s with key %s: %v", cfg.TLSCert, cfg.TLSKey, err)
		}
		tc := &tls.Config{MinVersion: MinTLSVersion, Certificates: []tls.Certificate{cert}}
		if len(data) > 2 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(data[2]) {
				return nil, fmt.Errorf("tls: client CA %s holds no PEM certificate", cfg.ClientCA)
			}
			tc.ClientCAs = pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return tc, nil
	}
}

func loadTokenData(path string) func([][]byte) (*Tokens, error) {
	return func(data [][]byte) (*Tokens, error) {
		t, err := ParseTokens(data[0])
		if err != nil {
			return nil, fmt.Errorf("token file %s: %w", path, err)
		}
		return t, nil
	}
}

// reloadSettings are the parts of ServerConfig the reloaders use.
type reloadSettings struct {
	interval time.Duration
	logger   *slog.Logger
	onReload func(kind string, err error)
}

func (c ServerConfig) reloadSettings(logger *slog.Logger) reloadSettings {
	return reloadSettings{interval: c.ReloadInterval, logger: logger, onReload: c.OnReload}
}

// serverTLSConfig returns the server's tls.Config: every handshake takes
// the certificate and client CA of the current generation through
// GetConfigForClient, so a rotated certificate serves the next connection
// while open connections, and the streams on them, go on undisturbed.
func serverTLSConfig(cfg ServerConfig, rs reloadSettings) (*tls.Config, error) {
	paths := []string{cfg.TLSCert, cfg.TLSKey}
	roles := []string{"server certificate", "server key"}
	if cfg.ClientCA != "" {
		paths = append(paths, cfg.ClientCA)
		roles = append(roles, "client CA")
	}
	r, err := newReloader(&reloader[*tls.Config]{
		kind: ReloadTLS, paths: paths, roles: roles, prefix: "tls",
		load: loadServerTLS(cfg), interval: rs.interval, logger: rs.logger, onReload: rs.onReload,
	})
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:         MinTLSVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.get(), nil },
	}, nil
}

// tokenSource returns the current tokens of cfg.TokenFile, re-read when
// the file changes. A call is authorised against the tokens current when
// it starts: an open stream outlives the removal of its token (restart the
// daemon to cut every stream at once).
func tokenSource(cfg ServerConfig, rs reloadSettings) (func() *Tokens, error) {
	r, err := newReloader(&reloader[*Tokens]{
		kind: ReloadTokens, paths: []string{cfg.TokenFile}, roles: []string{"token file"}, prefix: "token file",
		load: loadTokenData(cfg.TokenFile), interval: rs.interval, logger: rs.logger, onReload: rs.onReload,
	})
	if err != nil {
		return nil, err
	}
	return r.get, nil
}
