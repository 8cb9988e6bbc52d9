package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// outageEnv is a daemon whose cloud endpoint is a closed port: ecsemu is
// started on that address later, by the test.
func outageEnv(t *testing.T, policies string) (*env, string) {
	t.Helper()
	addr := freePort(t)
	e := &env{t: t, dir: t.TempDir(), endpoint: "http://" + addr}
	e.socket = filepath.Join(e.dir, "data", "replicatord.sock")
	e.config = filepath.Join(e.dir, "replicatord.yaml")
	e.writeConfig(policies)
	return e, addr
}

type statusJSON struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Cloud   struct {
		Reachable   bool   `json:"reachable"`
		LastError   string `json:"lastError"`
		Endpoint    string `json:"endpoint"`
		Regions     int    `json:"regions"`
		Credentials string `json:"credentials"`
	} `json:"cloud"`
	Store struct {
		Backend string `json:"backend"`
		Path    string `json:"path"`
	} `json:"store"`
}

func (e *env) status() statusJSON {
	e.t.Helper()
	out, code := e.ctl("status", "-o", "json")
	if code != 0 {
		e.t.Fatalf("replctl status: exit %d\n%s", code, out)
	}
	var s statusJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("status JSON %q: %v", out, err)
	}
	return s
}

// health asks the daemon's gRPC health service, as a kubelet probe would.
func (e *env) health() healthpb.HealthCheckResponse_ServingStatus {
	e.t.Helper()
	conn, err := grpc.NewClient("unix://"+e.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		e.t.Fatalf("health check: %v", err)
	}
	return resp.GetStatus()
}

// waitStatus polls replctl status until cond holds.
func (e *env) waitStatus(what string, timeout time.Duration, cond func(statusJSON) bool) statusJSON {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := e.status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("status did not show %s within %s; last: %+v", what, timeout, s)
		}
		time.Sleep(200 * time.Millisecond) // poll interval of a real process, not synchronisation
	}
}

// TestStartSurvivesCloudOutage: a daemon started while its ECS endpoint is
// a closed port stays up, serves the API with health NOT_SERVING and the
// reason, refuses Copy and policy reloads with UNAVAILABLE (replctl says
// the daemon is up and the cloud is not), and turns SERVING once an
// emulator listens on that address: then region checks work and copies run.
func TestStartSurvivesCloudOutage(t *testing.T) {
	e, addr := outageEnv(t, secretsPolicy)
	e.startDaemon("--log-format", "json")
	e.daemon.waitLine("NOT_SERVING until the cloud answers", 30*time.Second)

	if h := e.health(); h != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health %v while the cloud is down, want NOT_SERVING", h)
	}
	s := e.status()
	if s.Status != "SERVING_STATUS_NOT_SERVING" || !strings.Contains(s.Reason, "does not answer") || !strings.Contains(s.Reason, "connection refused") {
		t.Errorf("status while the cloud is down: %+v", s)
	}
	if s.Cloud.Reachable || s.Store.Backend != "bbolt" || !strings.HasSuffix(s.Store.Path, "state.db") {
		t.Errorf("status cloud/store: %+v", s)
	}
	out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "xx-nowhere-1", "-o", "json")
	if code != 24 || !strings.Contains(out, "replicatord is running but cannot serve this now") || strings.Contains(out, "is the daemon running") {
		t.Errorf("copy while the cloud is down: exit %d, want 24 (UNAVAILABLE) saying the cloud is down:\n%s", code, out)
	}
	for _, args := range [][]string{{"reload"}, {"plan"}, {"reconcile", "alinux-east"}} {
		if out, code := e.ctl(args...); code != 24 {
			t.Errorf("%v while the cloud is down: exit %d, want 24 (UNAVAILABLE):\n%s", args, code, out)
		}
	}
	if out, _ := e.ctl("jobs", "-o", "json"); strings.Contains(out, "{") {
		t.Errorf("jobs exist after refused requests:\n%s", out)
	}
	if e.daemon.err != nil || func() bool {
		select {
		case <-e.daemon.done:
			return true
		default:
			return false
		}
	}() {
		t.Fatalf("daemon exited: %v", e.daemon.err)
	}

	// The cloud comes back, on the very address.
	e.emu = start(t, "ecsemu", credsEnv(), "--listen", addr, "--time-scale", "100", "--seed", "7")
	e.emu.waitLine("listening on http://", 30*time.Second)
	s = e.waitStatus("SERVING", 90*time.Second, func(s statusJSON) bool { return s.Status == "SERVING_STATUS_SERVING" })
	if s.Reason != "" || !s.Cloud.Reachable || s.Cloud.Regions == 0 || !strings.HasPrefix(s.Cloud.Credentials, "****0001") {
		t.Errorf("status once the cloud answers: %+v", s)
	}
	if h := e.health(); h != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health %v once the cloud answers, want SERVING", h)
	}
	if out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "xx-nowhere-1", "-o", "json"); code != 13 || !strings.Contains(out, "unknown region") {
		t.Errorf("copy to an unknown region once serving: exit %d, want 13 (INVALID_ARGUMENT):\n%s", code, out)
	}
	if out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-shanghai", "-o", "json"); code != 0 {
		t.Errorf("copy once serving: exit %d\n%s", code, out)
	}
	// The policies started once their regions were checked.
	if out, code := e.ctl("policies", "-o", "json"); code != 0 || !strings.Contains(out, "alinux-east") {
		t.Errorf("policies once serving: exit %d\n%s", code, out)
	}
	for name, secret := range map[string]string{"access key id": accessKeyID, "access key secret": accessKeySecret} {
		if strings.Contains(e.daemon.output(), secret) {
			t.Errorf("the %s appears in the daemon's output during the outage", name)
		}
	}
}

// TestUnknownRegionFoundWhenCloudAnswers: with the cloud down at start the
// file's regions cannot be checked; once it answers, an unknown one is the
// config error it would have been at start: exit 2, naming it.
func TestUnknownRegionFoundWhenCloudAnswers(t *testing.T) {
	e, addr := outageEnv(t, strings.Replace(secretsPolicy, "[cn-qingdao]", "[cn-qingdao, xx-nowhere-1]", 1))
	e.startDaemon()
	e.daemon.waitLine("NOT_SERVING until the cloud answers", 30*time.Second)
	if out, _ := e.ctl("policies", "-o", "json"); strings.Contains(out, "alinux-east") {
		t.Errorf("a policy with unchecked regions runs:\n%s", out)
	}
	e.emu = start(t, "ecsemu", credsEnv(), "--listen", addr, "--time-scale", "100", "--seed", "7")
	if code := e.daemon.wait(120 * time.Second); code != 2 {
		t.Fatalf("daemon exit %d, want 2 (config error)", code)
	}
	if out := e.daemon.output(); !strings.Contains(out, "destination region xx-nowhere-1 is not a region this account can use") {
		t.Errorf("the exit does not name the region:\n%s", out)
	}
}

// TestConfigErrorsTogetherBeforeDisk: when the cloud answers at start, the
// file's own problems and its unknown regions are reported in one go, exit
// 2, before the data dir (state.db, socket) exists.
func TestConfigErrorsTogetherBeforeDisk(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(strings.Replace(secretsPolicy, "[cn-qingdao]", "[cn-qingdao, xx-nowhere-1]", 1) + "    priority: high\n")
	out, code := run(t, credsEnv(), filepath.Join(binDir, "replicatord"), "--config", e.config)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	for _, want := range []string{"xx-nowhere-1 is not a region this account can use", "priority"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir, "data")); err == nil {
		t.Error("the data dir was created by a start refused for config errors")
	}
}

// TestNoCredentialsDoesNotExit: without any credentials (no keys, no
// profile, no instance metadata) the daemon stays up NOT_SERVING with the
// reason, instead of exiting 2 where systemd would never restart it.
func TestNoCredentialsDoesNotExit(t *testing.T) {
	e, _ := outageEnv(t, "")
	home := t.TempDir()
	e.daemon = start(t, "replicatord", []string{"HOME=" + home, "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
		"ALIBABA_CLOUD_ACCESS_KEY_ID=", "ALIBABA_CLOUD_ACCESS_KEY_SECRET="}, "--config", e.config)
	e.daemon.waitLine("NOT_SERVING until the cloud answers", 30*time.Second)
	s := e.status()
	if s.Status != "SERVING_STATUS_NOT_SERVING" || !strings.Contains(s.Reason, "credentials") {
		t.Errorf("status without credentials: %+v", s)
	}
}

// TestEndpointSchemes: an endpoint written without a scheme is HTTPS: the
// real daemon pointed at ecsemu's plain-HTTP port by host:port never gets
// an answer (the TLS handshake fails before any request, so the AccessKeyId
// is not sent), stays NOT_SERVING with that reason, and does not warn about
// plain HTTP; an explicit http:// URL works and is warned about at start.
func TestEndpointSchemes(t *testing.T) {
	e := newEnv(t)
	host := strings.TrimPrefix(e.endpoint, "http://")
	cfg := fmt.Sprintf("version: 1\ndaemon: {data_dir: data}\ncloud:\n  provider: aliyun\n  endpoint: %s\n", host)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.startDaemon()
	e.daemon.waitLine("NOT_SERVING until the cloud answers", 30*time.Second)
	s := e.status()
	if s.Status != "SERVING_STATUS_NOT_SERVING" || !strings.Contains(s.Reason, "HTTP response to HTTPS client") {
		t.Errorf("scheme-less endpoint to a plain HTTP server: %+v, want NOT_SERVING on a TLS failure", s)
	}
	if s.Cloud.Endpoint != "https://"+host {
		t.Errorf("endpoint %q, want https://%s", s.Cloud.Endpoint, host)
	}
	e.daemon.stop()
	if out := e.daemon.output(); strings.Contains(out, "PLAIN HTTP") || strings.Contains(out, "plain HTTP") {
		t.Errorf("a scheme-less endpoint was warned about as plain HTTP:\n%s", out)
	}

	e.writeConfig("") // endpoint: http://...
	e.startDaemon()
	if out := e.daemon.output(); !strings.Contains(out, "WARNING: plain HTTP to the cloud endpoint(s) "+e.endpoint) {
		t.Errorf("no plain HTTP warning for %s:\n%s", e.endpoint, out)
	}
	if s := e.status(); s.Status != "SERVING_STATUS_SERVING" {
		t.Errorf("http:// endpoint: %+v", s)
	}
}
