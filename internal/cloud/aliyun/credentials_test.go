package aliyun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkcreds "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"

	"github.com/replicatord/replicatord/internal/cloud"
)

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	c := Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret, SecurityToken: testToken}
	cfg := Config{Endpoint: "127.0.0.1:1", Insecure: true, Credentials: c}
	var outputs []string
	for _, v := range []any{c, &c, cfg, &cfg} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		outputs = append(outputs, string(j))
		for _, h := range []func(*bytes.Buffer) slog.Handler{
			func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		} {
			var buf bytes.Buffer
			slog.New(h(&buf)).Info("config", "value", v)
			outputs = append(outputs, buf.String())
		}
	}
	outputs = append(outputs, c.String(), c.GoString(), cfg.String(), cfg.GoString(),
		Config{Endpoint: "https://user:" + testSecret + "@ecs.aliyuncs.com"}.String())
	for _, out := range outputs {
		if strings.Contains(out, testSecret) || strings.Contains(out, testToken) || strings.Contains(out, testKeyID) {
			t.Errorf("leak: %s", out)
		}
	}
	// Still useful: says which key, and that a secret is set.
	if s := c.String(); !strings.Contains(s, "****0001") || !strings.Contains(s, "[REDACTED]") {
		t.Errorf("String() = %q", s)
	}
	if s := (Credentials{}).String(); !strings.Contains(s, "default chain") {
		t.Errorf("zero String() = %q", s)
	}
}

func clearCredentialEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
		"ALIBABA_CLOUD_PROFILE", "ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
		"ALIBABA_CLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_CREDENTIALS_URI", "ALIBABA_CLOUD_CREDENTIALS_FILE",
		"ALIBABA_CLOUD_ECS_METADATA", "ALIBABA_CLOUD_CLI_PROFILE_DISABLED",
	} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	// Never wait for the instance metadata service of a machine that is not
	// an ECS instance.
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	t.Setenv("HOME", t.TempDir())
}

func TestCredentialsFromEnv(t *testing.T) {
	clearCredentialEnv(t)
	if _, ok := CredentialsFromEnv(); ok {
		t.Fatal("ok with no variables set")
	}
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", testKeyID)
	if _, ok := CredentialsFromEnv(); ok {
		t.Fatal("ok without a secret")
	}
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", testSecret)
	t.Setenv("ALIBABA_CLOUD_SECURITY_TOKEN", testToken)
	c, ok := CredentialsFromEnv()
	if !ok || c != (Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret, SecurityToken: testToken}) {
		t.Fatalf("got %v %v", c, ok)
	}
}

func writeCLIConfig(t *testing.T, content string) {
	t.Helper()
	dir := filepath.Join(os.Getenv("HOME"), ".aliyun")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDefaultChainUsesCLIProfile: zero Credentials find the current profile
// of ~/.aliyun/config.json (AK and StsToken modes) and sign with it.
func TestDefaultChainUsesCLIProfile(t *testing.T) {
	for _, mode := range []string{"AK", "StsToken"} {
		t.Run(mode, func(t *testing.T) {
			clearCredentialEnv(t)
			writeCLIConfig(t, fmt.Sprintf(`{"current":"work","profiles":[
				{"name":"other","mode":"AK","access_key_id":"LTAIother","access_key_secret":"other-secret"},
				{"name":"work","mode":%q,"access_key_id":%q,"access_key_secret":%q,"sts_token":%q}]}`,
				mode, testKeyID, testSecret, testToken))
			f := newFakeECS(t, nil)
			p := f.provider(func(c *Config) { c.Credentials = Credentials{} })
			if err := p.DeleteImage(context.Background(), "cn-beijing", "m-1"); err != nil {
				t.Fatal(err) // the fake checked the signature with testSecret
			}
			q := f.requests("DeleteImage")[0]
			if q.Get("AccessKeyId") != testKeyID {
				t.Errorf("AccessKeyId = %q", q.Get("AccessKeyId"))
			}
			if wantToken := mode == "StsToken"; q.Has("SecurityToken") != wantToken || (wantToken && q.Get("SecurityToken") != testToken) {
				t.Errorf("SecurityToken = %q (mode %s)", q.Get("SecurityToken"), mode)
			}
		})
	}
}

func TestDefaultChainUsesEnvironment(t *testing.T) {
	clearCredentialEnv(t)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", testKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", testSecret)
	f := newFakeECS(t, nil)
	p := f.provider(func(c *Config) { c.Credentials = Credentials{} })
	if err := p.DeleteImage(context.Background(), "cn-beijing", "m-1"); err != nil {
		t.Fatal(err)
	}
}

// TestNoCredentialsIsRetryable: New makes no call (a metadata service or
// STS may be down at start); CheckCredentials and every call then fail with
// CodeCredentials, retryable, sending nothing.
func TestNoCredentialsIsRetryable(t *testing.T) {
	clearCredentialEnv(t)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	f := newFakeECS(t, nil)
	p := f.provider(func(c *Config) { c.Credentials = Credentials{} })
	err := p.CheckCredentials()
	ce := asCloudError(t, err)
	if ce.Code != CodeCredentials || ce.Class != cloud.ClassRetryable || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("CheckCredentials without credentials: %v (code %s class %v)", err, ce.Code, ce.Class)
	}
	_, err = p.DescribeRegions(context.Background())
	if ce := asCloudError(t, err); ce.Code != CodeCredentials {
		t.Fatalf("DescribeRegions without credentials: %v", err)
	}
	if n := len(f.requests("")); n != 0 {
		t.Errorf("%d requests sent without credentials", n)
	}
}

// TestMalformedCLIConfigDoesNotLeak: the SDK quotes a malformed
// ~/.aliyun/config.json whole in its error; ours must not.
func TestMalformedCLIConfigDoesNotLeak(t *testing.T) {
	clearCredentialEnv(t)
	writeCLIConfig(t, `{"current":"work","profiles":[{"name":"work","mode":"AK","access_key_id":"x","access_key_secret":"`+testSecret+`"}`) // truncated
	p, err := New(Config{Endpoint: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.CheckCredentials()
	if err == nil {
		t.Fatal("New succeeded with a malformed profile and nothing else")
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Fatalf("secret in error: %v", err)
	}
	if !strings.Contains(err.Error(), "malformed aliyun cli config") {
		t.Errorf("error does not say what is wrong: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret}
	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"insecure without endpoint", Config{Insecure: true, Credentials: ok}, "Insecure"},
		{"http URL without insecure", Config{Endpoint: "http://127.0.0.1:8080", Credentials: ok}, "plain HTTP"},
		{"insecure without an http URL", Config{Endpoint: "127.0.0.1:8080", Insecure: true, Credentials: ok}, "http:// URL"},
		{"http override without insecure", Config{Endpoints: map[string]string{"cn-beijing": "http://127.0.0.1:8080"}, Credentials: ok}, "plain HTTP"},
		{"override of a bad region", Config{Endpoints: map[string]string{"Beijing!": "127.0.0.1:8080"}, Credentials: ok}, "region"},
		{"bad override", Config{Endpoints: map[string]string{"cn-beijing": "host/x"}, Credentials: ok}, "Endpoints[cn-beijing]"},
		{"unknown network", Config{Network: "intranet", Credentials: ok}, "Network"},
		{"bad home region", Config{Region: "Hangzhou!", Credentials: ok}, "Region"},
		{"URL with path", Config{Endpoint: "http://127.0.0.1:8080/ecs", Insecure: true, Credentials: ok}, "only scheme, host and port"},
		{"other scheme", Config{Endpoint: "ftp://host", Credentials: ok}, "scheme"},
		{"bad port", Config{Endpoint: "host:abc", Credentials: ok}, "port"},
		{"host with path", Config{Endpoint: "host/x", Credentials: ok}, "host"},
		{"negative concurrency", Config{MaxConcurrency: -1, Credentials: ok}, "MaxConcurrency"},
		{"negative timeout", Config{ReadTimeout: -1, Credentials: ok}, "timeouts"},
		{"secret without id", Config{Credentials: Credentials{AccessKeySecret: testSecret}}, "AccessKeyID"},
		{"id without secret", Config{Credentials: Credentials{AccessKeyID: testKeyID}}, "AccessKeySecret"},
	}
	for _, c := range bad {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("%s: secret in error", c.name)
		}
	}

	good := []struct {
		endpoint string
		insecure bool
		host     string
		scheme   string
	}{
		{"", false, "ecs.cn-beijing.aliyuncs.com", "HTTPS"},
		{"ecs.cn-beijing.aliyuncs.com", false, "ecs.cn-beijing.aliyuncs.com", "HTTPS"},
		{"https://ecs.aliyuncs.com", false, "ecs.aliyuncs.com", "HTTPS"},
		{"https://ecs.aliyuncs.com/", false, "ecs.aliyuncs.com", "HTTPS"},
		// A host without a scheme is HTTPS, Insecure or not.
		{"127.0.0.1:8080", false, "127.0.0.1:8080", "HTTPS"},
		{"http://127.0.0.1:8080", true, "127.0.0.1:8080", "HTTP"},
		{"http://[::1]:8080", true, "[::1]:8080", "HTTP"},
	}
	for _, g := range good {
		s, err := (Config{Endpoint: g.endpoint, Insecure: g.insecure, Credentials: ok}).settings()
		if err != nil {
			t.Errorf("%q: %v", g.endpoint, err)
			continue
		}
		if rt := s.routeFor("cn-beijing"); rt.host != g.host || rt.scheme != g.scheme {
			t.Errorf("%q: host %q scheme %q, want %q %q", g.endpoint, rt.host, rt.scheme, g.host, g.scheme)
		}
		if s.connectTimeout != DefaultConnectTimeout || s.readTimeout != DefaultReadTimeout || s.maxConcurrency != DefaultMaxConcurrency {
			t.Errorf("defaults not applied: %+v", s)
		}
	}
}

func TestProviderPrintsNoSecret(t *testing.T) {
	f := newFakeECS(t, nil)
	p := f.provider(func(c *Config) { c.Credentials.SecurityToken = testToken })
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, p)
		if strings.Contains(out, testSecret) || strings.Contains(out, testToken) {
			t.Errorf("%s of the provider leaks: %s", verb, out)
		}
	}
}

func TestScrubListIsBounded(t *testing.T) {
	s := newCredentialSource(Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret})
	for i := range 3 * maxRememberedSecrets {
		s.remember(fmt.Sprintf("rotated-secret-%04d", i))
	}
	if len(s.secrets) != maxRememberedSecrets {
		t.Errorf("%d secrets remembered, want %d", len(s.secrets), maxRememberedSecrets)
	}
	last := fmt.Sprintf("rotated-secret-%04d", 3*maxRememberedSecrets-1)
	if got := s.scrub("x " + last + " y"); got != "x [REDACTED] y" {
		t.Errorf("newest secret not scrubbed: %q", got)
	}
}

// failingProvider is a credential source whose every refresh fails with err.
type failingProvider struct{ err error }

func (f failingProvider) GetCredentials() (*sdkcreds.Credentials, error) { return nil, f.err }
func (f failingProvider) GetProviderName() string                        { return "failing" }

// TestCredentialErrorHidesSignedURL: the SDK's STS providers fail with the
// http.Client error of the signed AssumeRole URL (as here: a real request
// to a closed port); the error the daemon shows keeps the host, masks the
// key id and drops the query (signature, nonce, token), so the request
// cannot be replayed from a log.
func TestCredentialErrorHidesSignedURL(t *testing.T) {
	const keyID = "LTAIroleprofilekey0042"
	signed := "https://127.0.0.1:1/?AccessKeyId=" + keyID + "&Action=AssumeRole&SecurityToken=" + testToken +
		"&Signature=c2lnbmF0dXJlLW5vdC1mb3ItbG9ncw%3D%3D&SignatureNonce=8f14e45fceea167a5a36dedd4bea2543"
	_, httpErr := (&http.Client{Timeout: 5 * time.Second}).Post(signed, "application/x-www-form-urlencoded", nil)
	if httpErr == nil || !strings.Contains(httpErr.Error(), "Signature=") {
		t.Fatalf("the test's request did not fail with its URL: %v", httpErr)
	}
	s := newCredentialSource(Credentials{})
	s.inner = failingProvider{err: fmt.Errorf("refresh RoleArn sts token err: %w", httpErr)}
	_, err := s.GetCredentials()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, leak := range []string{keyID, "Signature=", "SignatureNonce", "c2lnbmF0dXJl", testToken} {
		if strings.Contains(msg, leak) {
			t.Errorf("credential error shows %q: %s", leak, msg)
		}
	}
	if !strings.Contains(msg, "https://127.0.0.1:1/") || !strings.Contains(msg, "connection refused") {
		t.Errorf("credential error lost what failed: %s", msg)
	}
}

func TestCredentialsInUse(t *testing.T) {
	f := newFakeECS(t, nil)
	p := f.provider()
	if got := p.CredentialsInUse(); got != "" {
		t.Errorf("before any call: %q", got)
	}
	if err := p.CheckCredentials(); err != nil {
		t.Fatal(err)
	}
	got := p.CredentialsInUse()
	if !strings.HasPrefix(got, "****"+testKeyID[len(testKeyID)-4:]) || strings.Contains(got, testKeyID) {
		t.Errorf("CredentialsInUse = %q, want the id's last four characters", got)
	}
}
