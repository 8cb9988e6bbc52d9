package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/replicatord/replicatord/internal/transport/transporttest"
)

// The standard tools other services use to reach the API, built from the Go
// module proxy at pinned versions so the test checks what operators run.
const (
	grpcurlModule     = "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3"
	healthProbeModule = "github.com/grpc-ecosystem/grpc-health-probe@v0.4.62"
	// apiToken is a valid bearer token (at least 16 characters).
	apiToken = "e2e-token-0123456789abcdef"
	// grpcurlRPCExit is grpcurl's exit code for a failed RPC: 64 + the
	// gRPC status code.
	grpcurlRPCExit      = 64
	codeUnauthenticated = 16
	codeUnavailable     = 14
)

var (
	toolsOnce sync.Once
	toolsDir  string
	toolsErr  error
)

// goTools builds grpcurl and grpc-health-probe once, into the user cache
// directory under a name holding the pinned versions, so later runs reuse
// them (linking them takes longer than every test here). With no route to
// the module proxy the tests that need them skip; any other build failure
// fails them.
func goTools(t *testing.T) (grpcurl, probe string) {
	t.Helper()
	toolsOnce.Do(func() { toolsDir, toolsErr = buildTools() })
	if toolsErr != nil {
		msg := toolsErr.Error()
		if strings.Contains(msg, "dial tcp") || strings.Contains(msg, "no such host") || strings.Contains(msg, "proxy.golang.org") {
			t.Skipf("cannot build the tools without the Go module proxy: %v", toolsErr)
		}
		t.Fatal(toolsErr)
	}
	return filepath.Join(toolsDir, "grpcurl"), filepath.Join(toolsDir, "grpc-health-probe")
}

func buildTools() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	key := strings.NewReplacer("/", "_", "@", "-").Replace(grpcurlModule + "+" + healthProbeModule)
	dir := filepath.Join(cache, "replicatord-e2e-tools", key)
	for _, mod := range []string{grpcurlModule, healthProbeModule} {
		name := path.Base(strings.Split(mod, "@")[0])
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		// Built aside and renamed into place, so a concurrent test binary
		// never runs a half-written tool.
		tmp, err := os.MkdirTemp(dir, ".build")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command("go", "install", mod)
		// Outside the module: `go install mod@version` must not see this
		// module's go.mod or flags meant for it.
		cmd.Dir = os.TempDir()
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", errors.New("go install " + mod + ": " + err.Error() + "\n" + string(out))
		}
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// freePort returns a loopback address with a port nobody listened on a
// moment ago. The daemon prints the address it was given, not the one it
// bound, so it needs a concrete port.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// tokenFile writes a token file of mode 0600 holding tokens.
func tokenFile(t *testing.T, tokens ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte("# API clients\n"+strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a program to completion and returns its combined output and
// exit code.
func run(t testing.TB, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out), 0
}

// ctlAt runs replctl against addr with extra flags and environment
// (REPLCTL_ADDRESS of the environment is overridden by --address).
func (e *env) ctlAt(addr string, env []string, args ...string) (string, int) {
	e.t.Helper()
	return run(e.t, env, filepath.Join(binDir, "replctl"), append([]string{"--address", addr}, args...)...)
}

// TLS with a bearer token, as another service would call it: health checks
// need no token, everything else does; reflection on TCP is opt-in; the
// real proto works without reflection.
func TestTLSWithToken(t *testing.T) {
	grpcurl, probe := goTools(t)
	e := newEnv(t)
	ca := transporttest.NewCA(t)
	srv := ca.Issue(t)
	addr := freePort(t)
	e.startDaemon("--listen", addr, "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile,
		"--token-file", tokenFile(t, apiToken), "--reflection=true")

	out, code := run(t, nil, probe, "-addr", addr, "-tls", "-tls-ca-cert", ca.CertFile)
	if code != 0 || !strings.Contains(out, "SERVING") {
		t.Errorf("grpc-health-probe over TLS: exit %d, %q; want 0 and SERVING (health needs no token)", code, out)
	}
	out, code = run(t, nil, probe, "-addr", addr, "-tls", "-tls-ca-cert", ca.CertFile, "-service", "replicator.v1.ReplicatorService")
	if code != 0 || !strings.Contains(out, "SERVING") {
		t.Errorf("grpc-health-probe -service replicator.v1.ReplicatorService: exit %d, %q; want SERVING", code, out)
	}

	auth := "authorization: Bearer " + apiToken
	out, code = run(t, nil, grpcurl, "-cacert", ca.CertFile, "-H", auth, addr, "list")
	if code != 0 || !strings.Contains(out, "replicator.v1.ReplicatorService") || !strings.Contains(out, "grpc.health.v1.Health") {
		t.Errorf("grpcurl list via reflection: exit %d, %q; want the replicator and health services", code, out)
	}
	out, code = run(t, nil, grpcurl, "-cacert", ca.CertFile, "-H", auth, "-d", `{"page_size": 10}`, addr, "replicator.v1.ReplicatorService/ListJobs")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("grpcurl ListJobs with the token (reflection): exit %d, %q; want 0 and a JSON answer", code, out)
	}
	// The real proto, no reflection needed (paths relative to the repo root).
	protoArgs := []string{"-import-path", "proto", "-proto", "replicator/v1/replicator.proto", "-cacert", ca.CertFile}
	out, code = run(t, nil, grpcurl, append(protoArgs, "-H", auth, "-d", `{}`, addr, "replicator.v1.ReplicatorService/ListJobs")...)
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("grpcurl ListJobs with -proto: exit %d, %q; want 0 and a JSON answer", code, out)
	}

	// Without a token, or with a wrong one: UNAUTHENTICATED.
	out, code = run(t, nil, grpcurl, append(protoArgs, "-d", `{}`, addr, "replicator.v1.ReplicatorService/ListJobs")...)
	if code != grpcurlRPCExit+codeUnauthenticated || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("grpcurl ListJobs without a token: exit %d, %q; want %d (64+Unauthenticated)", code, out, grpcurlRPCExit+codeUnauthenticated)
	}
	out, code = run(t, nil, grpcurl, append(protoArgs, "-H", "authorization: Bearer wrong-token-0123456789", "-d", `{}`, addr, "replicator.v1.ReplicatorService/ListJobs")...)
	if code != grpcurlRPCExit+codeUnauthenticated {
		t.Errorf("grpcurl ListJobs with a wrong token: exit %d, %q; want %d", code, out, grpcurlRPCExit+codeUnauthenticated)
	}
	if strings.Contains(out, "wrong-token") {
		t.Errorf("the refusal echoes the presented token: %q", out)
	}
	// Reflection is an API call like any other: it needs the token too.
	if out, code := run(t, nil, grpcurl, "-cacert", ca.CertFile, addr, "list"); code == 0 {
		t.Errorf("grpcurl list without a token succeeded: %q", out)
	}

	// replctl: exit 10+16 without the token, 0 with it (env or flag).
	if out, code := e.ctlAt(addr, nil, "--cacert", ca.CertFile, "jobs"); code != 10+codeUnauthenticated {
		t.Errorf("replctl jobs without a token: exit %d, %q; want 26 (Unauthenticated)", code, out)
	}
	if out, code := e.ctlAt(addr, []string{"REPLCTL_TOKEN=" + apiToken}, "--cacert", ca.CertFile, "jobs", "-o", "json"); code != 0 {
		t.Errorf("replctl jobs with REPLCTL_TOKEN: exit %d, %q; want 0", code, out)
	}
	if out, code := e.ctlAt(addr, nil, "--cacert", ca.CertFile, "--token", apiToken, "policies"); code != 0 {
		t.Errorf("replctl policies with --token: exit %d, %q; want 0", code, out)
	}
	// A client that does not trust the daemon's CA does not connect.
	other := transporttest.NewCA(t)
	if out, code := run(t, nil, probe, "-addr", addr, "-tls", "-tls-ca-cert", other.CertFile); code == 0 {
		t.Errorf("grpc-health-probe trusting another CA: exit 0, %q; want a refused handshake", out)
	}
	if strings.Contains(e.daemon.output(), apiToken) {
		t.Errorf("the daemon logged the bearer token")
	}
}

// Reflection stays off on TCP unless asked for: it maps the API for anyone
// who can connect.
func TestTCPReflectionOffByDefault(t *testing.T) {
	grpcurl, _ := goTools(t)
	e := newEnv(t)
	ca := transporttest.NewCA(t)
	srv := ca.Issue(t)
	addr := freePort(t)
	e.startDaemon("--listen", addr, "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--token-file", tokenFile(t, apiToken))
	out, code := run(t, nil, grpcurl, "-cacert", ca.CertFile, "-H", "authorization: Bearer "+apiToken, addr, "list")
	if code == 0 || !strings.Contains(out, "does not support the reflection API") {
		t.Errorf("grpcurl list on TCP without --reflection: exit %d, %q; want the reflection API refused", code, out)
	}
}

// Mutual TLS: only certificates of the configured client CA get in.
func TestMutualTLS(t *testing.T) {
	_, probe := goTools(t)
	e := newEnv(t)
	serverCA, clientCA, otherCA := transporttest.NewCA(t), transporttest.NewCA(t), transporttest.NewCA(t)
	srv := serverCA.Issue(t)
	good := clientCA.Issue(t, "payments-deployer")
	bad := otherCA.Issue(t, "payments-deployer")
	addr := freePort(t)
	e.startDaemon("--listen", addr, "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", clientCA.CertFile)

	ctlTLS := []string{"--cacert", serverCA.CertFile, "--timeout", "20s"}
	out, code := e.ctlAt(addr, nil, append(ctlTLS, "--cert", good.CertFile, "--key", good.KeyFile, "jobs", "-o", "json")...)
	if code != 0 {
		t.Errorf("replctl with a certificate of the client CA: exit %d, %q; want 0", code, out)
	}
	// Refused in the handshake: UNAVAILABLE (10+14). With TLS 1.3 the
	// client learns it on its first write, so the message is either the
	// server's alert or a broken pipe; only the code is stable.
	out, code = e.ctlAt(addr, nil, append(ctlTLS, "--cert", bad.CertFile, "--key", bad.KeyFile, "jobs")...)
	if code != 10+codeUnavailable {
		t.Errorf("replctl with a certificate of another CA: exit %d, %q; want 24 (refused: Unavailable)", code, out)
	}
	out, code = e.ctlAt(addr, nil, append(ctlTLS, "jobs")...)
	if code != 10+codeUnavailable {
		t.Errorf("replctl without a client certificate: exit %d, %q; want 24 (refused: Unavailable)", code, out)
	}

	probeTLS := []string{"-addr", addr, "-tls", "-tls-ca-cert", serverCA.CertFile}
	if out, code := run(t, nil, probe, append(probeTLS, "-tls-client-cert", good.CertFile, "-tls-client-key", good.KeyFile)...); code != 0 || !strings.Contains(out, "SERVING") {
		t.Errorf("grpc-health-probe with the right client certificate: exit %d, %q; want SERVING", code, out)
	}
	if out, code := run(t, nil, probe, append(probeTLS, "-tls-client-cert", bad.CertFile, "-tls-client-key", bad.KeyFile)...); code == 0 {
		t.Errorf("grpc-health-probe with another CA's client certificate: exit 0, %q; want refused", out)
	}
}

// Misconfigured transports are refused before anything listens: exit 2
// with a message naming the problem.
func TestTransportRefusedAtStart(t *testing.T) {
	e := newEnv(t)
	ca := transporttest.NewCA(t)
	srv := ca.Issue(t)
	short := tokenFile(t, "short-token")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"tcp without tls", []string{"--listen", freePort(t)}, "needs TLS"},
		{"token over plaintext", []string{"--listen", freePort(t), "--insecure", "--token-file", tokenFile(t, apiToken)}, "clear text"},
		{"client ca without tls", []string{"--listen", freePort(t), "--insecure", "--tls-client-ca", ca.CertFile}, "--tls-client-ca"},
		{"short token", []string{"--listen", freePort(t), "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--token-file", short}, "at least 16"},
		{"cert without key", []string{"--listen", freePort(t), "--tls-cert", srv.CertFile}, "--tls-key"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			args := append([]string{"--config", e.config}, tc.args...)
			out, code := run(t, credsEnv(), filepath.Join(binDir, "replicatord"), args...)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Errorf("replicatord %v: exit %d, output:\n%s\nwant exit 2 and %q", tc.args, code, out, tc.want)
			}
			if strings.Contains(out, "short-token") {
				t.Errorf("the error shows the token: %q", out)
			}
		})
	}
}

// The unix socket is the daemon's own: mode 0600, so file permissions are
// its access control.
func TestUnixSocketMode(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	fi, err := os.Stat(e.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %s has mode %v, want a socket of mode 0600", e.socket, fi.Mode())
	}
	if out, code := e.ctl("jobs", "-o", "json"); code != 0 {
		t.Errorf("replctl over the unix socket: exit %d, %q", code, out)
	}
}

// On the unix socket reflection is on by default, so grpcurl needs neither
// the proto nor TLS.
func TestUnixSocketGrpcurl(t *testing.T) {
	grpcurl, probe := goTools(t)
	e := newEnv(t)
	e.startDaemon()
	target := "unix://" + e.socket
	out, code := run(t, nil, grpcurl, "-plaintext", target, "list")
	if code != 0 || !strings.Contains(out, "replicator.v1.ReplicatorService") {
		t.Errorf("grpcurl list on the unix socket: exit %d, %q; want the replicator service", code, out)
	}
	out, code = run(t, nil, grpcurl, "-plaintext", "-d", `{"states": ["JOB_STATE_FAILED"]}`, target, "replicator.v1.ReplicatorService/ListJobs")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("grpcurl ListJobs on the unix socket: exit %d, %q", code, out)
	}
	if out, code := run(t, nil, probe, "-addr", target); code != 0 || !strings.Contains(out, "SERVING") {
		t.Errorf("grpc-health-probe on the unix socket: exit %d, %q; want SERVING", code, out)
	}
}

// Health turns NOT_SERVING as soon as SIGTERM begins the shutdown, before
// the server stops: a health watcher connected beforehand is told so.
func TestHealthNotServingOnSIGTERM(t *testing.T) {
	e := newEnv(t)
	d := e.startDaemon()
	conn, err := grpc.NewClient("unix://"+e.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: first answer %v, %v; want SERVING", first, err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	// The stream either carries NOT_SERVING or ends; SERVING again would
	// be the bug. Once told, hang up, so the graceful stop need not wait
	// for this stream.
	var got []string
	for {
		m, err := w.Recv()
		if err != nil {
			break
		}
		got = append(got, m.Status.String())
		if m.Status != healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
	cancel()
	if code := d.wait(30 * time.Second); code != 0 {
		t.Errorf("replicatord exit %d after SIGTERM, want 0", code)
	}
	if len(got) == 0 || got[len(got)-1] != healthpb.HealthCheckResponse_NOT_SERVING.String() {
		t.Errorf("health statuses after SIGTERM: %v; want NOT_SERVING", got)
	}
}
