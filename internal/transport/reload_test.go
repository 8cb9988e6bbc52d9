package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/replicatord/replicatord/internal/transport/transporttest"
)

// secretDir lays files out as the kubelet mounts a Secret: dir/<name> is a
// symlink to ..data/<name>, ..data a symlink to a timestamped directory,
// and an update writes a new directory and renames a new ..data symlink
// over the old one, so every file changes in one atomic step.
type secretDir struct {
	t   *testing.T
	dir string
	gen int
}

func newSecretDir(t *testing.T, files map[string][]byte) *secretDir {
	s := &secretDir{t: t, dir: t.TempDir()}
	s.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(s.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *secretDir) path(name string) string { return filepath.Join(s.dir, name) }

func (s *secretDir) update(files map[string][]byte) {
	s.t.Helper()
	s.gen++
	gen := fmt.Sprintf("..gen%d", s.gen)
	if err := os.Mkdir(filepath.Join(s.dir, gen), 0o700); err != nil {
		s.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.dir, gen, name), data, 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		s.t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pairFiles returns a fresh server certificate of ca as Secret contents.
func pairFiles(t *testing.T, ca *transporttest.CA, tokens ...string) map[string][]byte {
	p := ca.Issue(t)
	return map[string][]byte{
		"tls.crt": readFile(t, p.CertFile),
		"tls.key": readFile(t, p.KeyFile),
		"tokens":  []byte(strings.Join(tokens, "\n") + "\n"),
	}
}

// reloads records OnReload calls.
type reloads struct {
	mu   sync.Mutex
	ok   map[string]int
	errs map[string][]error
}

func (r *reloads) hook(kind string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ok == nil {
		r.ok, r.errs = map[string]int{}, map[string][]error{}
	}
	if err != nil {
		r.errs[kind] = append(r.errs[kind], err)
	} else {
		r.ok[kind]++
	}
}

func (r *reloads) counts(kind string) (ok, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok[kind], len(r.errs[kind])
}

// servedBy makes a health call trusting only pool and reports the serial
// number of the certificate the server presented.
func servedBy(t *testing.T, addr string, pool *x509.CertPool) (string, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2"}})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func openEcho(t *testing.T, cc *grpc.ClientConn) grpc.BidiStreamingClient[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse] {
	t.Helper()
	st, err := testgrpc.NewTestServiceClient(cc).FullDuplexCall(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	echo(t, st, "before")
	return st
}

func echo(t *testing.T, st grpc.BidiStreamingClient[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse], msg string) {
	t.Helper()
	if err := st.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
		t.Fatalf("send %q on the open stream: %v", msg, err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("receive %q on the open stream: %v", msg, err)
	}
	if got := string(resp.GetPayload().GetBody()); got != msg {
		t.Fatalf("open stream echoed %q, want %q", got, msg)
	}
}

// TestRotateCertAndTokens swaps the certificate, its key and the token
// file as cert-manager and the kubelet do: a new connection gets the new
// certificate (from another CA, so the client can only verify the new
// one) and needs the new token, while a stream opened before the swap
// goes on.
func TestRotateCertAndTokens(t *testing.T) {
	ca1, ca2 := transporttest.NewCA(t), transporttest.NewCA(t)
	sec := newSecretDir(t, pairFiles(t, ca1, tokenA))
	var rl reloads
	srv := startServer(t, ServerConfig{
		Address: "127.0.0.1:0", TLSCert: sec.path("tls.crt"), TLSKey: sec.path("tls.key"), TokenFile: sec.path("tokens"),
		ReloadInterval: time.Nanosecond, OnReload: rl.hook,
	})
	old := dial(t, ClientConfig{Address: srv.addr, CACert: ca1.CertFile, Token: tokenA})
	st := openEcho(t, old)
	if _, err := servedBy(t, srv.addr, ca1.Pool()); err != nil {
		t.Fatalf("first certificate: %v", err)
	}

	sec.update(pairFiles(t, ca2, tokenB))

	if _, err := servedBy(t, srv.addr, ca2.Pool()); err != nil {
		t.Fatalf("after rotation, a new connection does not get the new certificate: %v", err)
	}
	if _, err := servedBy(t, srv.addr, ca1.Pool()); err == nil {
		t.Fatal("after rotation, a new connection still gets the old certificate")
	}
	fresh := dial(t, ClientConfig{Address: srv.addr, CACert: ca2.CertFile, Token: tokenB})
	wantCode(t, "new connection, new token", unary(t, callCtx(t), fresh, "hi"), codes.OK)
	stale := dial(t, ClientConfig{Address: srv.addr, CACert: ca2.CertFile, Token: tokenA})
	wantCode(t, "new connection, removed token", unary(t, callCtx(t), stale, "hi"), codes.Unauthenticated)

	// The stream opened before the swap is untouched; new calls on its
	// connection are checked against the new tokens.
	echo(t, st, "after")
	wantCode(t, "old connection, removed token", unary(t, callCtx(t), old, "hi"), codes.Unauthenticated)
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}

	if ok, failed := rl.counts(ReloadTLS); ok != 1 || failed != 0 {
		t.Errorf("TLS reloads: %d ok, %d failed; want 1, 0", ok, failed)
	}
	if ok, failed := rl.counts(ReloadTokens); ok != 1 || failed != 0 {
		t.Errorf("token reloads: %d ok, %d failed; want 1, 0", ok, failed)
	}
	if logs := srv.logs.String(); !strings.Contains(logs, "reloaded tls from disk") || !strings.Contains(logs, "reloaded tokens from disk") {
		t.Errorf("reloads not logged:\n%s", logs)
	}
}

// TestBadRotationKeepsOldMaterial writes a certificate that does not match
// its key and a token file with a short token: the server goes on with
// what it had, logs and reports each failure once, and takes the next good
// files.
func TestBadRotationKeepsOldMaterial(t *testing.T) {
	ca := transporttest.NewCA(t)
	good := pairFiles(t, ca, tokenA)
	sec := newSecretDir(t, good)
	var rl reloads
	srv := startServer(t, ServerConfig{
		Address: "127.0.0.1:0", TLSCert: sec.path("tls.crt"), TLSKey: sec.path("tls.key"), TokenFile: sec.path("tokens"),
		ReloadInterval: time.Nanosecond, OnReload: rl.hook,
	})
	first, err := servedBy(t, srv.addr, ca.Pool())
	if err != nil {
		t.Fatal(err)
	}

	other := pairFiles(t, ca)
	sec.update(map[string][]byte{"tls.crt": other["tls.crt"], "tls.key": good["tls.key"], "tokens": []byte("short\n")})
	for i := range 3 { // several handshakes and calls: one report each
		got, err := servedBy(t, srv.addr, ca.Pool())
		if err != nil {
			t.Fatalf("handshake %d after a bad rotation: %v", i, err)
		}
		if got != first {
			t.Fatalf("handshake %d: served certificate %s, want the old one %s", i, got, first)
		}
		cc := dial(t, ClientConfig{Address: srv.addr, CACert: ca.CertFile, Token: tokenA})
		wantCode(t, "old token after a bad token file", unary(t, callCtx(t), cc, "hi"), codes.OK)
	}
	if ok, failed := rl.counts(ReloadTLS); ok != 0 || failed != 1 {
		t.Errorf("TLS reloads after a mismatched pair: %d ok, %d failed; want 0, 1", ok, failed)
	}
	if ok, failed := rl.counts(ReloadTokens); ok != 0 || failed != 1 {
		t.Errorf("token reloads after a bad file: %d ok, %d failed; want 0, 1", ok, failed)
	}
	logs := srv.logs.String()
	if !strings.Contains(logs, "cannot reload tls; still using the previous one") || !strings.Contains(logs, sec.path("tls.crt")) {
		t.Errorf("bad certificate not logged with its file:\n%s", logs)
	}
	if !strings.Contains(logs, "cannot reload tokens") || !strings.Contains(logs, "line 1") {
		t.Errorf("bad token file not logged with its line:\n%s", logs)
	}
	if strings.Contains(logs, "short") || strings.Contains(logs, tokenA) {
		t.Errorf("a token reached the log:\n%s", logs)
	}

	// The next good files are taken.
	sec.update(map[string][]byte{"tls.crt": other["tls.crt"], "tls.key": other["tls.key"], "tokens": []byte(tokenB + "\n")})
	if got, err := servedBy(t, srv.addr, ca.Pool()); err != nil || got == first {
		t.Fatalf("after a good rotation: certificate %s (err %v), want a new one", got, err)
	}
	cc := dial(t, ClientConfig{Address: srv.addr, CACert: ca.CertFile, Token: tokenB})
	wantCode(t, "new token after the fix", unary(t, callCtx(t), cc, "hi"), codes.OK)
}

// TestRotateClientCA replaces the CA client certificates must chain to.
func TestRotateClientCA(t *testing.T) {
	serverCA, clientCA1, clientCA2 := transporttest.NewCA(t), transporttest.NewCA(t), transporttest.NewCA(t)
	files := pairFiles(t, serverCA)
	files["ca.crt"] = readFile(t, clientCA1.CertFile)
	sec := newSecretDir(t, files)
	srv := startServer(t, ServerConfig{
		Address: "127.0.0.1:0", TLSCert: sec.path("tls.crt"), TLSKey: sec.path("tls.key"), ClientCA: sec.path("ca.crt"),
		ReloadInterval: time.Nanosecond,
	})
	c1, c2 := clientCA1.Issue(t, "client"), clientCA2.Issue(t, "client")
	client := func(p transporttest.Pair) error {
		return checkHealth(t, dial(t, ClientConfig{Address: srv.addr, CACert: serverCA.CertFile, Cert: p.CertFile, Key: p.KeyFile}))
	}
	if err := client(c1); err != nil {
		t.Fatalf("client of the first CA: %v", err)
	}
	files["ca.crt"] = readFile(t, clientCA2.CertFile)
	sec.update(files)
	if err := client(c2); err != nil {
		t.Fatalf("client of the new CA after rotation: %v", err)
	}
	if err := client(c1); err == nil {
		t.Fatal("client of the removed CA still accepted after rotation")
	}
}

// TestReloadInterval checks the files at most once per interval, so a busy
// server does not read them on every handshake.
func TestReloadInterval(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if err := os.WriteFile(path, []byte(tokenA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	r, err := newReloader(&reloader[*Tokens]{
		kind: ReloadTokens, paths: []string{path}, roles: []string{"token file"}, prefix: "token file",
		load: loadTokenData(path), interval: time.Minute, now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(tokenB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Second)
	if !r.get().Valid(tokenA) || r.get().Valid(tokenB) {
		t.Fatal("reloaded before the interval passed")
	}
	now = now.Add(time.Second)
	if r.get().Valid(tokenA) || !r.get().Valid(tokenB) {
		t.Fatal("not reloaded once the interval passed")
	}
	if err := (ServerConfig{Address: sockPath(t), ReloadInterval: -time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "reload interval") {
		t.Errorf("negative reload interval: %v", err)
	}
}
