package transport

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnixSocketIs0600AndServes(t *testing.T) {
	path := sockPath(t)
	srv := startServer(t, ServerConfig{Address: "unix://" + path})
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	// The private directory used while binding is gone.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "r.sock" {
		t.Fatalf("socket directory holds %v, want only r.sock", entries)
	}
	if err := checkHealth(t, dial(t, ClientConfig{Address: srv.addr})); err != nil {
		t.Fatalf("health over the socket: %v", err)
	}
}

func TestListenUnixCreatesParentDir0700(t *testing.T) {
	base := filepath.Dir(sockPath(t))
	path := filepath.Join(base, "a", "b", "r.sock")
	l, err := Listen(ServerConfig{Address: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, d := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
}

func TestListenUnixRemovesStaleSocket(t *testing.T) {
	path := sockPath(t)
	// A daemon killed with SIGKILL leaves its socket behind.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	srv := startServer(t, ServerConfig{Address: path})
	if err := checkHealth(t, dial(t, ClientConfig{Address: srv.addr})); err != nil {
		t.Fatalf("health after replacing a stale socket: %v", err)
	}
}

func TestListenUnixRefusesLiveSocket(t *testing.T) {
	path := sockPath(t)
	srv := startServer(t, ServerConfig{Address: path})
	_, err := Listen(ServerConfig{Address: path})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "running daemon") {
		t.Errorf("error %q should name the path and say a daemon runs", err)
	}
	// The first daemon's socket survived the attempt.
	if err := checkHealth(t, dial(t, ClientConfig{Address: srv.addr})); err != nil {
		t.Fatalf("first daemon after refused second listen: %v", err)
	}
}

func TestListenUnixRefusesNonSocket(t *testing.T) {
	path := sockPath(t)
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(ServerConfig{Address: path})
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v, want 'not a socket'", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("file was touched: %q", b)
	}
}

func TestListenUnixCloseRemovesOnlyItsOwnSocket(t *testing.T) {
	path := sockPath(t)
	l1, err := Listen(ServerConfig{Address: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket still there after Close: %v", err)
	}

	l1, err = Listen(ServerConfig{Address: path})
	if err != nil {
		t.Fatal(err)
	}
	// Someone removes the socket and a successor binds the same path.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	l2, err := Listen(ServerConfig{Address: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	l1.Close()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("successor's socket was removed by the old listener's Close: %v", err)
	}
	conn.Close()
}

func TestListenUnixPathTooLong(t *testing.T) {
	path := filepath.Join(filepath.Dir(sockPath(t)), strings.Repeat("x", 100)+".sock")
	_, err := Listen(ServerConfig{Address: path})
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("Listen(long path): %v, want 'too long'", err)
	}
}

func TestListenTCPNeedsTLSOrInsecure(t *testing.T) {
	_, err := Listen(ServerConfig{Address: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("plaintext TCP listener opened without --insecure")
	}
	for _, want := range []string{"127.0.0.1:0", "--tls-cert", "--insecure"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := ServerOptions(ServerConfig{Address: "127.0.0.1:0"}, nil); err == nil {
		t.Error("ServerOptions accepted plaintext TCP without --insecure")
	}

	cfg := ServerConfig{Address: "127.0.0.1:0", Insecure: true}
	srv := startServer(t, cfg)
	if err := checkHealth(t, dial(t, ClientConfig{Address: srv.addr, Insecure: true})); err != nil {
		t.Fatalf("health over insecure TCP: %v", err)
	}
	w := cfg.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "INSECURE") {
		t.Fatalf("Warnings() = %q, want one INSECURE warning", w)
	}
	if !strings.Contains(srv.logs.String(), "INSECURE") {
		t.Errorf("ServerOptions did not log the insecure warning; logs:\n%s", srv.logs)
	}
}

func TestListenTCPInUse(t *testing.T) {
	l, err := Listen(ServerConfig{Address: "127.0.0.1:0", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Listen(ServerConfig{Address: l.Addr().String(), Insecure: true})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second TCP listen: %v, want ErrInUse", err)
	}
}
