package transport

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/replicatord/replicatord/internal/transport/transporttest"
)

func tlsServer(t *testing.T, clientCA string) (*testServer, *transporttest.CA) {
	t.Helper()
	ca := transporttest.NewCA(t)
	pair := ca.Issue(t)
	return startServer(t, ServerConfig{Address: "127.0.0.1:0", TLSCert: pair.CertFile, TLSKey: pair.KeyFile, ClientCA: clientCA}), ca
}

// negotiated makes a health call with the given client TLS settings and
// returns the TLS version it ran over.
func negotiated(t *testing.T, addr string, tc *tls.Config) (uint16, error) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(cc).Check(callCtx(t), &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		return 0, err
	}
	return p.AuthInfo.(credentials.TLSInfo).State.Version, nil
}

func TestTLS12And13Accepted(t *testing.T) {
	srv, ca := tlsServer(t, "")
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		got, err := negotiated(t, srv.addr, &tls.Config{RootCAs: ca.Pool(), MinVersion: v, MaxVersion: v})
		if err != nil {
			t.Fatalf("%s: %v", tls.VersionName(v), err)
		}
		if got != v {
			t.Errorf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(v))
		}
	}
	// Through Dial, as replctl does it.
	if err := checkHealth(t, dial(t, ClientConfig{Address: srv.addr, CACert: ca.CertFile})); err != nil {
		t.Fatalf("Dial with --cacert: %v", err)
	}
}

func TestTLS11Refused(t *testing.T) {
	srv, ca := tlsServer(t, "")
	old := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	conn, err := tls.Dial("tcp", srv.addr, old)
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 refused for another reason: %v", err)
	}
	// Control: the same dial at 1.2 works, so the version was the reason.
	old.MaxVersion = tls.VersionTLS12
	conn, err = tls.Dial("tcp", srv.addr, old)
	if err != nil {
		t.Fatalf("TLS 1.2 control dial: %v", err)
	}
	conn.Close()
}

func TestTLSUnknownServerCARefused(t *testing.T) {
	srv, _ := tlsServer(t, "")
	other := transporttest.NewCA(t)
	err := checkHealth(t, dial(t, ClientConfig{Address: srv.addr, CACert: other.CertFile}))
	wantCode(t, "server cert from an unknown CA", err, codes.Unavailable)
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %q does not say the certificate was the problem", err)
	}
}

func TestMutualTLS(t *testing.T) {
	clientCA := transporttest.NewCA(t)
	srv, serverCA := tlsServer(t, clientCA.CertFile)
	good := clientCA.Issue(t, "replctl")
	foreign := transporttest.NewCA(t).Issue(t, "replctl")

	err := checkHealth(t, dial(t, ClientConfig{Address: srv.addr, CACert: serverCA.CertFile}))
	wantCode(t, "no client certificate", err, codes.Unavailable)

	err = checkHealth(t, dial(t, ClientConfig{Address: srv.addr, CACert: serverCA.CertFile, Cert: foreign.CertFile, Key: foreign.KeyFile}))
	wantCode(t, "client certificate from another CA", err, codes.Unavailable)

	// A certificate the server itself uses, signed by the server CA, is
	// not a client identity either: only ClientCA counts.
	serverPair := serverCA.Issue(t)
	err = checkHealth(t, dial(t, ClientConfig{Address: srv.addr, CACert: serverCA.CertFile, Cert: serverPair.CertFile, Key: serverPair.KeyFile}))
	wantCode(t, "client certificate from the server CA", err, codes.Unavailable)

	if err := checkHealth(t, dial(t, ClientConfig{Address: srv.addr, CACert: serverCA.CertFile, Cert: good.CertFile, Key: good.KeyFile})); err != nil {
		t.Fatalf("valid client certificate refused: %v", err)
	}
}

func TestTLSConfigErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := transporttest.NewCA(t)
	pair := ca.Issue(t)
	missing := filepath.Join(dir, "missing.pem")

	_, err := ServerOptions(ServerConfig{Address: "127.0.0.1:0", TLSCert: missing, TLSKey: pair.KeyFile}, nil)
	if err == nil || !strings.Contains(err.Error(), "tls: cannot load server certificate "+missing) {
		t.Errorf("missing server cert: %v", err)
	}
	_, err = ServerOptions(ServerConfig{Address: "127.0.0.1:0", TLSCert: pair.CertFile, TLSKey: pair.KeyFile, ClientCA: junk}, nil)
	if err == nil || !strings.Contains(err.Error(), junk) || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("junk client CA: %v", err)
	}
	_, err = Dial(ClientConfig{Address: "127.0.0.1:1", CACert: missing})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing --cacert: %v", err)
	}
	_, err = Dial(ClientConfig{Address: "127.0.0.1:1", Cert: pair.CertFile})
	if err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("--cert without --key: %v", err)
	}
	_, err = Dial(ClientConfig{Address: "127.0.0.1:1", Cert: pair.CertFile, Key: junk})
	if err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk client key: %v", err)
	}
	// Swapped files: the error names them and shows no key material.
	_, err = ServerOptions(ServerConfig{Address: "127.0.0.1:0", TLSCert: pair.KeyFile, TLSKey: pair.CertFile}, nil)
	if err == nil || !strings.Contains(err.Error(), pair.KeyFile) {
		t.Fatalf("swapped cert and key: %v", err)
	}
	key, err2 := os.ReadFile(pair.KeyFile)
	if err2 != nil {
		t.Fatal(err2)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(key)), "\n") {
		if !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
			t.Errorf("error shows key material: %v", err)
		}
	}
}

func TestDialTLSFlagsAndInsecureConflict(t *testing.T) {
	_, err := Dial(ClientConfig{Address: "127.0.0.1:1", Insecure: true, CACert: "ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("Dial(--insecure --cacert): %v", err)
	}
}
