package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/replicatord/replicatord/internal/transport/transporttest"
)

// probeGet is one GET of an HTTP probe: status code and body.
func probeGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Over TLS with tokens, as in a cluster: the HTTP probes answer without
// either, the gRPC metrics count a call refused for its missing token
// under Unauthenticated (the metrics interceptors run before the auth
// one), and on SIGTERM /readyz turns 503 NOT_SERVING while the graceful
// stop waits for an open stream, and /healthz stays 200.
func TestProbesAndGRPCMetricsOverTLS(t *testing.T) {
	e := newEnv(t)
	ca := transporttest.NewCA(t)
	srv := ca.Issue(t)
	addr, maddr := freePort(t), freePort(t)
	d := e.startDaemon("--listen", addr, "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile,
		"--token-file", tokenFile(t, apiToken), "--metrics-listen", maddr, "--shutdown-grace", "60s")

	if code, body := probeGet(t, "http://"+maddr+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz of a serving daemon = %d %q", code, body)
	}
	if out, code := e.ctlAt(addr, nil, "--cacert", ca.CertFile, "jobs"); code != 10+codeUnauthenticated {
		t.Fatalf("replctl jobs without a token: exit %d, %q", code, out)
	}
	if out, code := e.ctlAt(addr, []string{"REPLCTL_TOKEN=" + apiToken}, "--cacert", ca.CertFile, "jobs"); code != 0 {
		t.Fatalf("replctl jobs with the token: exit %d, %q", code, out)
	}
	s := scrapeUntil(t, maddr, "ListJobs counted", 10*time.Second, func(s series) bool {
		v, _ := s.sum("grpc_server_handled_total", "grpc_method", "ListJobs", "grpc_code", "OK")
		return v >= 1
	})
	if v := s.get(t, "grpc_server_handled_total", "grpc_service", "replicator.v1.ReplicatorService", "grpc_method", "ListJobs", "grpc_code", "Unauthenticated"); v < 1 {
		t.Errorf("ListJobs refused for its missing token counted %v times, want >= 1", v)
	}

	// A health Watch stream keeps the graceful stop waiting.
	tc, err := credentials.NewClientTLSFromFile(ca.CertFile, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(tc))
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
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v %v, want SERVING", m, err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := probeGet(t, "http://"+maddr+"/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "NOT_SERVING") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during the graceful stop = %d %q, want 503 NOT_SERVING", code, body)
		}
		time.Sleep(100 * time.Millisecond) // poll a real process
	}
	if code, body := probeGet(t, "http://"+maddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the graceful stop = %d %q, want 200 (liveness is not readiness)", code, body)
	}
	cancel()
	if code := d.wait(30 * time.Second); code != 0 {
		t.Errorf("replicatord exit %d after SIGTERM, want 0", code)
	}
}

// The HTTP probes during a cloud outage at start: /readyz is 503 with the
// reason the daemon gives (the pod leaves the Service, the kubelet does not
// restart it, since /healthz stays 200), and 200 once ECS answers.
func TestProbesDuringCloudOutage(t *testing.T) {
	e, addr := outageEnv(t, secretsPolicy)
	maddr := freePort(t)
	e.startDaemon("--metrics-listen", maddr)
	e.daemon.waitLine("NOT_SERVING until the cloud answers", 30*time.Second)
	code, body := probeGet(t, "http://"+maddr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "NOT_SERVING") || !strings.Contains(body, "does not answer") {
		t.Errorf("/readyz while the cloud is down = %d %q, want 503 NOT_SERVING with the reason", code, body)
	}
	if code, body := probeGet(t, "http://"+maddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while the cloud is down = %d %q, want 200", code, body)
	}
	e.emu = start(t, "ecsemu", credsEnv(), "--listen", addr, "--time-scale", "100", "--seed", "7")
	e.emu.waitLine("listening on http://", 30*time.Second)
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := probeGet(t, "http://"+maddr+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz once ECS answers = %d %q, want 200", code, body)
		}
		time.Sleep(200 * time.Millisecond) // poll a real process
	}
}
