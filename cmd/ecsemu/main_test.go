package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("timeScale: 2\nslots: 3\n"), 0o600)
	badState := filepath.Join(dir, "state.json")
	os.WriteFile(badState, []byte(`{"version":1,"images":[{"id":"m-x"}]}`), 0o600)
	notPEM := filepath.Join(dir, "cert.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	creds := []string{"--access-key-id", "id", "--access-key-secret", "hunter2-secret"}
	cases := []struct {
		name string
		args []string
		env  func(string) string
		want string
	}{
		{"no credentials", nil, env(), "no access key"},
		{"id without secret", []string{"--access-key-id", "id"}, env(), "both an id and a secret"},
		{"env id without secret", nil, env("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"), "both an id and a secret"},
		{"unknown flag", append(creds, "--slots", "3"), env(), "flag provided but not defined"},
		{"stray argument", append(creds, "serve"), env(), `unexpected argument "serve"`},
		{"bad number", append(creds, "--time-scale", "fast"), env(), "invalid value"},
		{"negative time scale", append(creds, "--time-scale", "-2"), env(), "TimeScale"},
		{"negative throttle burst", append(creds, "--throttle-burst", "-5"), env(), "--throttle-burst (or throttleBurst) -5"},
		{"throttle burst not a number", append(creds, "--throttle-burst", "1k"), env(), "invalid value"},
		{"bad compliance rule", append(creds, "--compliance-rule", "eu"), env(), "ComplianceRule"},
		{"bad route rate", append(creds, "--route-rate", "cn-hangzhou>cn-beijing"), env(), "--route-rate"},
		{"unknown route region", append(creds, "--route-rate", "cn-hangzhou>mars=5"), env(), "RouteRates"},
		{"bad deny route", append(creds, "--deny-route", "cn-hangzhou"), env(), "DeniedRoutes"},
		{"bad fault", append(creds, "--fault", "CopyImage"), env(), "--fault"},
		{"bad fault key", append(creds, "--fault", "CopyImage:errorRate=1"), env(), "unknown key"},
		{"bad fault rate", append(creds, "--fault", "CopyImage:hangRate=2"), env(), "hangRate"},
		{"unknown fault action", append(creds, "--fault", "RunInstances:hangRate=0.5"), env(), "Faults"},
		{"missing fixture", append(creds, "--fixture", filepath.Join(dir, "none.yaml")), env(), "fixture file"},
		{"missing config", append(creds, "--config", filepath.Join(dir, "none.yaml")), env(), "config file"},
		{"unknown config key", append(creds, "--config", badYAML), env(), "slots"},
		{"cert without key", append(creds, "--tls-cert", notPEM), env(), "--tls-cert and --tls-key"},
		{"bad certificate", append(creds, "--tls-cert", notPEM, "--tls-key", notPEM, "--listen", "127.0.0.1:0"), env(), "TLS"},
		{"bad state file", append(creds, "--state-file", badState), env(), badState},
		{"state file in a missing dir", append(creds, "--state-file", filepath.Join(dir, "no", "s.json")), env(), "state file"},
		{"negative STS lifetime", append(creds, "--sts-token-lifetime", "-1s"), env(), "tokenLifetime"},
		{"bad OIDC provider", append(creds, "--sts-oidc-provider-arn", "oidc"), env(), "oidcProviderArn"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(context.Background(), tc.args, tc.env, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
			if strings.Contains(stderr.String(), "hunter2-secret") {
				t.Fatal("the secret was printed")
			}
		})
	}
	var stderr strings.Builder
	if code := run(context.Background(), []string{"--help"}, env(), io.Discard, &stderr); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, knob := range []string{"-listen", "-config", "-fixture", "-access-key-id", "-seed", "-time-scale", "-copy-slots", "-rate", "-route-rate",
		"-startup-delay", "-max-image-size-gib", "-image-quota", "-compliance-rule", "-deny-route", "-copy-conflict", "-create-failed-rate",
		"-cancel-not-supported-rate", "-throttle-rate", "-throttle-burst", "-throttle-code", "-fault", "/_ecsemu/stats", "ALIBABA_CLOUD_ACCESS_KEY_ID"} {
		if !strings.Contains(stderr.String(), knob) {
			t.Errorf("--help does not document %s", knob)
		}
	}
}

func TestConfigFileAndPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ecsemu.yaml")
	os.WriteFile(path, []byte(`
listen: 127.0.0.1:9999
credentials: {fileid: filesecret}
seed: 5
timeScale: 60
startupDelay: 10s
routeRates: {"cn-hangzhou>cn-beijing": 100}
deniedRoutes: ["cn-hangzhou>us-east-1"]
faults:
  CopyImage: {internalErrorRate: 0.1, latency: 200ms}
`), 0o600)
	o, err := parseOptions([]string{"--config", path, "--seed", "6", "--route-rate", "cn-hangzhou>cn-shanghai=10", "--fault", "*:unavailableRate=0.5"},
		env("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "envsecret"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if o.listen != "127.0.0.1:9999" || c.Seed != 6 || c.TimeScale != 60 || c.StartupDelay != 10*time.Second {
		t.Fatalf("listen %s seed %d scale %g startup %v", o.listen, c.Seed, c.TimeScale, c.StartupDelay)
	}
	if c.RouteRates["cn-hangzhou>cn-beijing"] != 100 || c.RouteRates["cn-hangzhou>cn-shanghai"] != 10 || len(c.DeniedRoutes) != 1 {
		t.Fatalf("routes %v %v", c.RouteRates, c.DeniedRoutes)
	}
	if f := c.Faults["CopyImage"]; f.InternalErrorRate != 0.1 || f.Latency != 200*time.Millisecond || c.Faults["*"].UnavailableRate != 0.5 {
		t.Fatalf("faults %+v", c.Faults)
	}
	if c.Credentials["fileid"] != "filesecret" || c.Credentials["envid"] != "envsecret" {
		t.Fatalf("credentials from file and env: %v ids", len(c.Credentials))
	}
	if strings.Contains(o.summary(), "secret") {
		t.Fatalf("summary shows a secret: %s", o.summary())
	}
	// The flow-control burst: from the file, and the flag over it.
	burstFile := filepath.Join(dir, "burst.yaml")
	os.WriteFile(burstFile, []byte("throttleRate: 950000\nthrottleBurst: 1000\n"), 0o600)
	creds := env("ALIBABA_CLOUD_ACCESS_KEY_ID", "a", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "b")
	if o, err := parseOptions([]string{"--config", burstFile}, creds, io.Discard); err != nil || o.cfg.ThrottleBurst != 1000 || o.cfg.ThrottleRate != 950000 {
		t.Fatalf("throttleBurst from the file: %v %d %g", err, o.cfg.ThrottleBurst, o.cfg.ThrottleRate)
	}
	if o, err := parseOptions([]string{"--config", burstFile, "--throttle-burst", "3"}, creds, io.Discard); err != nil || o.cfg.ThrottleBurst != 3 {
		t.Fatalf("--throttle-burst over the file: %v %d", err, o.cfg.ThrottleBurst)
	}
	// An explicit --startup-delay 0 means none, not the default.
	o, err = parseOptions([]string{"--startup-delay", "0"}, env("ALIBABA_CLOUD_ACCESS_KEY_ID", "a", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "b"), io.Discard)
	if err != nil || o.cfg.StartupDelay >= 0 {
		t.Fatalf("--startup-delay 0: %v %v", err, o.cfg.StartupDelay)
	}
}

func TestServeOnAFreePortAndStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--time-scale", "60"}, env("ALIBABA_CLOUD_ACCESS_KEY_ID", "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "topsecret"), pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ecsemu listening on ")
	if !ok || strings.HasSuffix(addr, ":0") {
		t.Fatalf("first line %q", line)
	}
	resp, err := http.Get(addr + "/_ecsemu/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if _, ok := st["images"]; !ok {
		t.Fatalf("stats %v", st)
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "topsecret") {
		t.Fatal("the secret was printed")
	}
}

func TestCatalogueStateAndSTSOptions(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfgFile, []byte("catalog: false\nstateFile: "+filepath.Join(dir, "s.json")+"\nsts: {tokenLifetime: 190s, oidcIssuer: https://issuer.example}\n"), 0o600)
	creds := []string{"--access-key-id", "id", "--access-key-secret", "secret"}
	o, err := parseOptions(append(creds, "--config", cfgFile), env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.cfg.NoCatalog || o.cfg.StateFile != filepath.Join(dir, "s.json") || o.cfg.STS.TokenLifetime != 190*time.Second || o.cfg.STS.OIDCIssuer != "https://issuer.example" {
		t.Fatalf("from the file: %+v", o.cfg)
	}
	o, err = parseOptions(append(creds, "--config", cfgFile, "--catalog=true", "--sts-token-lifetime", "5m", "--state-file", ""), env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.NoCatalog || o.cfg.STS.TokenLifetime != 5*time.Minute || o.cfg.StateFile != "" {
		t.Fatalf("flags over the file: %+v", o.cfg)
	}
	if o, _ := parseOptions(creds, env(), io.Discard); o.cfg.NoCatalog {
		t.Fatal("the catalogue is off by default")
	}
}
