package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secretsPolicy gives ListPolicies something to show.
const secretsPolicy = `policies:
  - name: alinux-east
    source:
      region: cn-hangzhou
      images:
        ids: [` + imgAlinux + `]
    destinations: [cn-qingdao]
    interval: 1m
`

// The access key secret and the API token never leave the daemon: not in
// its logs at debug level (JSON), not in errors sent to clients, not in
// metrics, not in ListPolicies — through good copies, refused ones, ECS
// failures, throttling, and a daemon signing with a wrong secret.
func TestSecretsNeverShown(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(secretsPolicy)
	maddr := freePort(t)
	tokens := tokenFile(t, apiToken)
	e.startDaemon("--log-format", "json", "--log-level", "debug", "--metrics-listen", maddr, "--token-file", tokens)

	var seen []string // everything a client, a scraper or a log reader got
	ctl := func(args ...string) (string, int) {
		t.Helper()
		out, code := run(t, []string{"REPLCTL_ADDRESS=unix://" + e.socket, "REPLCTL_TOKEN=" + apiToken},
			filepath.Join(binDir, "replctl"), args...)
		seen = append(seen, out)
		return out, code
	}

	// A good copy, to the end.
	if out, code := ctl("copy", imgAlinux, "--from", source, "--to", "cn-shanghai", "-o", "json"); code != 0 {
		t.Fatalf("copy exit %d:\n%s", code, out)
	}
	// Refused before ECS copies anything: an image that does not exist, a
	// region that does not exist, a source that is too large.
	for _, args := range [][]string{
		{"copy", "m-bp1doesnotexist00000", "--from", source, "--to", "cn-shanghai", "-o", "json"},
		{"copy", imgAlinux, "--from", source, "--to", "xx-nowhere-1", "-o", "json"},
	} {
		if out, code := ctl(args...); code == 0 {
			t.Errorf("replctl %v succeeded, want refused:\n%s", args, out)
		}
	}
	// ECS failing and throttling while a copy runs: every failed call is
	// logged (debug: with its RequestId). --detach returns once ECS
	// accepted the copy, so it runs in the background until then.
	ctlEnv := []string{"REPLCTL_ADDRESS=unix://" + e.socket, "REPLCTL_TOKEN=" + apiToken}
	e.emuAdmin(http.MethodPut, "/_ecsemu/faults", `{"action":"CopyImage","fault":{"internalErrorRate":1}}`)
	bg := start(t, "replctl", ctlEnv, "copy", imgUbuntu, "--from", source, "--to", "cn-beijing", "--detach", "-o", "json")
	e.daemon.waitLine("InternalError", 60*time.Second)
	// A fresh bucket of one call per minute: the next call of each action
	// passes, the ones after it are throttled.
	e.emuAdmin(http.MethodPut, "/_ecsemu/config", `{"throttleRate": 1}`)
	e.emuAdmin(http.MethodDelete, "/_ecsemu/faults", "")
	e.daemon.waitLine("Throttling", 60*time.Second)
	e.emuAdmin(http.MethodPut, "/_ecsemu/config", `{"throttleRate": 1000}`)
	if code := bg.wait(120 * time.Second); code != 0 {
		t.Fatalf("copy --detach exit %d:\n%s", code, bg.output())
	}
	out := bg.output()
	seen = append(seen, out)
	var id string
	for k := range jobsIn(t, out) {
		id = k
	}
	w := start(t, "replctl", ctlEnv, "watch", "--job", id, "-o", "json")
	w.waitFor(id+" SUCCEEDED", 120*time.Second, func(l string) bool {
		return jobsIn(t, l)[id].State == "JOB_STATE_SUCCEEDED"
	})
	w.cmd.Process.Kill()
	seen = append(seen, w.output())
	for _, args := range [][]string{{"jobs", "-o", "json"}, {"get", id, "-o", "yaml"}, {"policies", "-o", "json"}, {"policies"}} {
		if out, code := ctl(args...); code != 0 {
			t.Errorf("replctl %v: exit %d:\n%s", args, code, out)
		}
	}
	_, metrics := scrape(t, maddr)
	seen = append(seen, metrics)
	if !strings.Contains(metrics, `code="InternalError"`) || !strings.Contains(metrics, `code="Throttling.User"`) {
		t.Errorf("metrics do not show the injected failures; the test did not exercise them:\n%s", metrics)
	}
	if code := e.daemon.stop(); code != 0 {
		t.Errorf("daemon exit %d after SIGTERM", code)
	}
	logs := e.daemon.output()
	if !strings.Contains(logs, `"level":"DEBUG"`) || !strings.Contains(logs, `"request_id"`) {
		t.Errorf("the daemon did not log at debug level with request ids; the test did not exercise its logs")
	}
	seen = append(seen, logs)

	// A daemon signing with a wrong secret: ECS refuses every call, and
	// the errors (logged, and sent to replctl) must not quote the secret
	// either.
	const wrongSecret = "wrong-secret-must-not-leak-93kq"
	wrong := start(t, "replicatord", append(credsEnv(), "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+wrongSecret),
		"--config", e.config, "--data-dir", filepath.Join(e.dir, "wrong"), "--log-format", "json", "--log-level", "debug")
	wrong.waitLine("replicatord ready", 30*time.Second)
	wrongSocket := filepath.Join(e.dir, "wrong", "replicatord.sock")
	out, code := run(t, []string{"REPLCTL_ADDRESS=unix://" + wrongSocket}, filepath.Join(binDir, "replctl"),
		"copy", imgAlinux, "--from", source, "--to", "cn-shanghai", "-o", "json")
	if code == 0 {
		t.Errorf("copy through a daemon with a wrong secret succeeded:\n%s", out)
	}
	seen = append(seen, out)
	wrong.waitLine("SignatureDoesNotMatch", 30*time.Second)
	wrong.stop()
	seen = append(seen, wrong.output())

	all := strings.Join(seen, "\n")
	for name, secret := range map[string]string{
		"access key secret":       accessKeySecret,
		"wrong access key secret": wrongSecret,
		"bearer token":            apiToken,
	} {
		if i := strings.Index(all, secret); i >= 0 {
			t.Errorf("the %s appears in what the daemon showed: ...%s...", name, all[max(0, i-200):min(len(all), i+len(secret)+50)])
		}
	}
	// The access key id is not secret (ECS puts it in every request), but
	// replicatord shows it masked to the last four characters at most.
	if i := strings.Index(all, accessKeyID); i >= 0 {
		t.Errorf("the full access key id appears: ...%s...", all[max(0, i-200):min(len(all), i+len(accessKeyID)+50)])
	}
}

// TestSDKDebugStripped: DEBUG=sdk makes the SDK print every request (its
// URL holds the AccessKeyId) and answer to stdout; the daemon removes it
// before the SDK starts, says so, and the SDK prints nothing.
func TestSDKDebugStripped(t *testing.T) {
	e := newEnv(t)
	e.daemon = start(t, "replicatord", append(credsEnv(), "DEBUG=sdk"), "--config", e.config)
	e.daemon.waitLine("replicatord ready", 30*time.Second)
	if out, code := e.ctl("copy", imgAlinux, "--from", source, "--to", "cn-shanghai", "--detach", "-o", "json"); code != 0 {
		t.Fatalf("copy: exit %d\n%s", code, out)
	}
	e.daemon.stop()
	out := e.daemon.output()
	if !strings.Contains(out, "removing DEBUG=sdk") || !strings.Contains(out, "removed DEBUG=sdk from the environment") {
		t.Errorf("no warning about DEBUG=sdk:\n%s", out)
	}
	for _, sdkLine := range []string{"> POST", "> GET", "Retry Times", "< HTTP/"} {
		if strings.Contains(out, sdkLine) {
			t.Errorf("the SDK's debug output (%q) is in the daemon's output:\n%s", sdkLine, out)
		}
	}
	if strings.Contains(out, accessKeyID) {
		t.Errorf("the full access key id is in the daemon's output")
	}
}
