package transport

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/credentials/local"
	"google.golang.org/grpc/metadata"

	"github.com/replicatord/replicatord/internal/transport/transporttest"
)

func tokenFile(t testing.TB, tokens ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("# test tokens\n"+strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wrongToken is long enough to be plausible and distinct from both.
const wrongToken = "tokX-0000000000000000"

// checkAuth exercises the token rules on a server that requires tokenA,
// for a unary and a streaming call alike, and for health without a token.
func checkAuth(t *testing.T, srv *testServer, base ClientConfig) {
	t.Helper()
	for _, tc := range []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"missing", "", codes.Unauthenticated},
		{"wrong", wrongToken, codes.Unauthenticated},
		{"right", tokenA, codes.OK},
	} {
		cfg := base
		cfg.Token = tc.token
		cc := dial(t, cfg)
		wantCode(t, tc.name+" token, unary", unary(t, callCtx(t), cc, "hi"), tc.want)
		n, err := streaming(t, callCtx(t), cc, "hi")
		wantCode(t, tc.name+" token, streaming", err, tc.want)
		if tc.want == codes.OK && n != 3 {
			t.Errorf("%s token: stream delivered %d messages, want 3", tc.name, n)
		}
		if tc.want != codes.OK && n != 0 {
			t.Errorf("%s token: stream delivered %d messages before refusing", tc.name, n)
		}
		if err := checkHealth(t, cc); err != nil {
			t.Errorf("%s token: health must not need a token: %v", tc.name, err)
		}
	}
	logs := srv.logs.String()
	for _, secret := range []string{tokenA, wrongToken} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a token reached the log:\n%s", logs)
		}
	}
	if !strings.Contains(logs, "Unauthenticated") || !strings.Contains(logs, "/grpc.testing.TestService/UnaryCall") || !strings.Contains(logs, "/grpc.testing.TestService/StreamingOutputCall") {
		t.Errorf("refused calls not logged with method and code:\n%s", logs)
	}
}

func TestTokenOnUnixSocket(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t), TokenFile: tokenFile(t, tokenA)})
	checkAuth(t, srv, ClientConfig{Address: srv.addr})
}

func TestTokenOverTLS(t *testing.T) {
	ca := transporttest.NewCA(t)
	pair := ca.Issue(t)
	srv := startServer(t, ServerConfig{Address: "127.0.0.1:0", TLSCert: pair.CertFile, TLSKey: pair.KeyFile, TokenFile: tokenFile(t, tokenB, tokenA)})
	checkAuth(t, srv, ClientConfig{Address: srv.addr, CACert: ca.CertFile})
}

func TestAuthorizationHeaderForms(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t), TokenFile: tokenFile(t, tokenA)})
	cc := dial(t, ClientConfig{Address: srv.addr})
	for _, tc := range []struct {
		header []string
		want   codes.Code
	}{
		{[]string{"bearer " + tokenA}, codes.OK},
		{[]string{"Bearer   " + tokenA + " "}, codes.OK},
		{[]string{"Basic " + tokenA}, codes.Unauthenticated},
		{[]string{tokenA}, codes.Unauthenticated},
		{[]string{"Bearer"}, codes.Unauthenticated},
		{[]string{"Bearer " + wrongToken, "Bearer " + tokenA}, codes.Unauthenticated},
	} {
		md := metadata.MD{"authorization": tc.header}
		ctx := metadata.NewOutgoingContext(callCtx(t), md)
		wantCode(t, strings.Join(tc.header, ","), unary(t, ctx, cc, "hi"), tc.want)
	}
	if strings.Contains(srv.logs.String(), tokenA) {
		t.Fatalf("a token reached the log:\n%s", srv.logs)
	}
}

func TestClientNeverSendsTokenInClear(t *testing.T) {
	_, err := Dial(ClientConfig{Address: "127.0.0.1:7070", Insecure: true, Token: tokenA})
	if err == nil || !strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("Dial(--insecure --token): %v, want a refusal", err)
	}
	if strings.Contains(err.Error(), tokenA) {
		t.Fatalf("error shows the token: %v", err)
	}
	// Even bypassing Dial's check, grpc enforces RequireTransportSecurity:
	// plaintext credentials are refused outright ...
	if cc, err := grpc.NewClient("127.0.0.1:7070", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(tokenA))); err == nil {
		cc.Close()
		t.Fatal("grpc accepted a bearer token on insecure credentials")
	}
	// ... and local credentials over loopback TCP (not a unix socket) do
	// not count as secure, so the call fails before the token is sent.
	srv := startServer(t, ServerConfig{Address: "127.0.0.1:0", Insecure: true})
	cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(local.NewCredentials()), grpc.WithPerRPCCredentials(bearer(tokenA)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := unary(t, callCtx(t), cc, "hi"); err == nil || !strings.Contains(err.Error(), "insecure") {
		t.Fatalf("token over loopback TCP with local creds: %v, want refusal", err)
	}
}

func TestServerRefusesTokenFileOnPlaintextTCP(t *testing.T) {
	cfg := ServerConfig{Address: "127.0.0.1:0", Insecure: true, TokenFile: tokenFile(t, tokenA)}
	if _, err := Listen(cfg); err == nil {
		t.Fatal("Listen accepted tokens on plaintext TCP")
	}
	if _, err := ServerOptions(cfg, nil); err == nil {
		t.Fatal("ServerOptions accepted tokens on plaintext TCP")
	}
}

func TestServerOptionsBadTokenFile(t *testing.T) {
	path := tokenFile(t) // comments only
	_, err := ServerOptions(ServerConfig{Address: sockPath(t), TokenFile: path}, nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("ServerOptions with an empty token file: %v", err)
	}
}

func TestBearerCredentialsRedacted(t *testing.T) {
	b := bearer(tokenA)
	md, err := b.GetRequestMetadata(context.Background())
	if err != nil || md["authorization"] != "Bearer "+tokenA {
		t.Fatalf("metadata %v, %v", md, err)
	}
	if !b.RequireTransportSecurity() {
		t.Fatal("bearer credentials must require transport security")
	}
	for _, s := range []string{b.String(), b.GoString()} {
		if strings.Contains(s, tokenA) {
			t.Fatalf("formatting shows the token: %s", s)
		}
	}
}

func TestClientConfigFormattingRedactsToken(t *testing.T) {
	cfg := ClientConfig{Address: "h:1", Token: tokenA}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, tokenA) || !strings.Contains(s, "h:1") {
			t.Errorf("formatted ClientConfig %q", s)
		}
	}
}
