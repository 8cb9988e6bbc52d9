package aliyun

// Conformance of the emulated STS: the SDK's own STS client (RPC, version
// 2015-04-01) and the SDK's RAM-role and OIDC credential providers, through
// this adapter, against ecsemu over real HTTP(S).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/sts"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/ecsemu"
)

const (
	confRole     = "acs:ram::1234567890123456:role/replicator"
	confProvider = "acs:ram::1234567890123456:oidc-provider/ack-rrsa"
)

func stsClient(t *testing.T, srvURL string, cred ...string) *sts.Client {
	t.Helper()
	var c *sts.Client
	var err error
	if len(cred) == 3 {
		c, err = sts.NewClientWithStsToken("cn-hangzhou", cred[0], cred[1], cred[2])
	} else {
		c, err = sts.NewClientWithAccessKey("cn-hangzhou", testKeyID, testSecret)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = strings.TrimPrefix(srvURL, "http://")
	t.Cleanup(c.Shutdown)
	return c
}

func assumeRoleReq(name string, seconds int) *sts.AssumeRoleRequest {
	req := sts.CreateAssumeRoleRequest()
	req.Scheme = "http"
	req.RoleArn = confRole
	req.RoleSessionName = name
	if seconds > 0 {
		req.DurationSeconds = requests.NewInteger(seconds)
	}
	return req
}

// The SDK's STS client speaks to the emulated STS; the issued credentials
// sign ECS calls and identify as the assumed role.
func TestConformanceSTSClient(t *testing.T) {
	e := newEmu(t, ecsemu.Config{})
	c := stsClient(t, e.srv.URL)
	resp, err := c.AssumeRole(assumeRoleReq("conformance", 900))
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	cr := resp.Credentials
	if !strings.HasPrefix(cr.AccessKeyId, "STS.") || cr.SecurityToken == "" || resp.AssumedRoleUser.Arn != confRole+"/conformance" {
		t.Fatalf("AssumeRole answer %+v", resp)
	}
	exp, err := time.Parse("2006-01-02T15:04:05Z", cr.Expiration)
	if left := time.Until(exp); err != nil || left > 900*time.Second || left < 890*time.Second {
		t.Fatalf("Expiration %q (%v), want about 900 s from now", cr.Expiration, err)
	}

	sc := stsClient(t, e.srv.URL, cr.AccessKeyId, cr.AccessKeySecret, cr.SecurityToken)
	id := sts.CreateGetCallerIdentityRequest()
	id.Scheme = "http"
	who, err := sc.GetCallerIdentity(id)
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if who.IdentityType != "AssumedRoleUser" || who.Arn != "acs:ram::1234567890123456:assumed-role/replicator/conformance" || who.AccountId != "1234567890123456" {
		t.Fatalf("GetCallerIdentity %+v", who)
	}

	p, err := New(Config{Endpoint: e.srv.URL, Insecure: true,
		Credentials: Credentials{AccessKeyID: cr.AccessKeyId, AccessKeySecret: cr.AccessKeySecret, SecurityToken: cr.SecurityToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.DescribeRegions(context.Background()); err != nil {
		t.Fatalf("ECS with STS credentials: %v", err)
	}

	for _, tc := range []struct {
		name   string
		mod    func(*sts.AssumeRoleRequest)
		status int
		code   string
	}{
		{"duration", func(r *sts.AssumeRoleRequest) { r.DurationSeconds = requests.NewInteger(60) }, 400, "InvalidParameter.DurationSeconds"},
		{"session name", func(r *sts.AssumeRoleRequest) { r.RoleSessionName = "a*b" }, 400, "InvalidParameter.RoleSessionName"},
		{"other account", func(r *sts.AssumeRoleRequest) { r.RoleArn = "acs:ram::42:role/x" }, 404, "EntityNotExist.Role"},
		{"policy", func(r *sts.AssumeRoleRequest) { r.Policy = "{not json" }, 400, "InvalidParameter.PolicyGrammar"},
	} {
		req := assumeRoleReq("conformance", 0)
		tc.mod(req)
		_, err := c.AssumeRole(req)
		var se *sdkerrors.ServerError
		if !errors.As(err, &se) || se.HttpStatus() != tc.status || se.ErrorCode() != tc.code {
			t.Errorf("%s: err %v, want %d %s", tc.name, err, tc.status, tc.code)
		}
	}
}

// An STS token past its expiry is refused with InvalidSecurityToken.Expired
// (HTTP 400), which the adapter classifies as permanent: renewing is the
// credential provider's job, not a retry's.
func TestConformanceSTSExpiredTokenRefused(t *testing.T) {
	auth := clock.NewFake(time.Now())
	e := newEmu(t, ecsemu.Config{AuthClock: auth, STS: ecsemu.STSConfig{TokenLifetime: 300 * time.Second}})
	resp, err := stsClient(t, e.srv.URL).AssumeRole(assumeRoleReq("expiry", 900))
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	cr := resp.Credentials
	p, err := New(Config{Endpoint: e.srv.URL, Insecure: true,
		Credentials: Credentials{AccessKeyID: cr.AccessKeyId, AccessKeySecret: cr.AccessKeySecret, SecurityToken: cr.SecurityToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if _, err := p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou", OwnerAlias: "self"}); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	// Still inside the ±15 min Timestamp window the SDK signs with.
	auth.Step(301 * time.Second)
	_, err = p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou", OwnerAlias: "self"})
	wantError(t, "expired token", err, "InvalidSecurityToken.Expired", cloud.ClassPermanent, 400)
	if strings.Contains(err.Error(), cr.SecurityToken) || strings.Contains(err.Error(), cr.AccessKeySecret) {
		t.Errorf("session secret in error: %v", err)
	}
	if st := e.emu.Stats(); st.TokensRefused != 1 {
		t.Errorf("TokensRefused %d, want 1", st.TokensRefused)
	}
	// Unknown tokens are refused too, whatever the key.
	for name, tc := range map[string]struct {
		creds Credentials
		code  string
	}{
		"another token":           {Credentials{AccessKeyID: cr.AccessKeyId, AccessKeySecret: cr.AccessKeySecret, SecurityToken: "CAISforged0000"}, "InvalidSecurityToken.MismatchWithAccessKey"},
		"unknown key and token":   {Credentials{AccessKeyID: "STS.NUforged", AccessKeySecret: "forged-secret", SecurityToken: "CAISforged0000"}, "InvalidSecurityToken.Malformed"},
		"long-term key and token": {Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret, SecurityToken: cr.SecurityToken}, "InvalidSecurityToken.MismatchWithAccessKey"},
	} {
		bad, err := New(Config{Endpoint: e.srv.URL, Insecure: true, Credentials: tc.creds})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.DescribeRegions(ctx)
		wantError(t, name, err, tc.code, cloud.ClassPermanent, 400)
		bad.Close()
	}
}

// tlsSTS serves the emulator over HTTPS too (the SDK's role providers call
// STS only over HTTPS) and makes the SDK's providers trust it: they clone
// http.DefaultTransport for every call. Keep-alives are off so those
// throwaway transports leave no idle connections behind.
func tlsSTS(t *testing.T, e *emuEnv) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(e.emu)
	srv.Config.SetKeepAlivesEnabled(false)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	dt := http.DefaultTransport.(*http.Transport)
	old := dt.TLSClientConfig
	dt.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.Cleanup(func() { dt.TLSClientConfig = old })
	return strings.TrimPrefix(srv.URL, "https://")
}

// callUntilRenewed calls ECS through p until the emulator issued n
// sessions; every call must succeed. The SDK renews when 180 s or less of
// a session remain, so with a 181 s lifetime it renews about every second.
func callUntilRenewed(t *testing.T, e *emuEnv, p *Provider, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	calls := 0
	for e.emu.Stats().TokensIssued < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d sessions issued after %d calls", e.emu.Stats().TokensIssued, calls)
		}
		if _, err := p.DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-hangzhou", OwnerAlias: "self"}); err != nil {
			t.Fatalf("call %d: %v", calls, err)
		}
		calls++
		time.Sleep(50 * time.Millisecond) // pacing, not synchronisation
	}
	st := e.emu.Stats()
	if st.TokensRefused != 0 {
		t.Fatalf("%d calls refused for an expired token", st.TokensRefused)
	}
	for action, codes := range st.Calls {
		for code, k := range codes {
			if code != "200" {
				t.Errorf("%s answered %s %d times", action, code, k)
			}
		}
	}
}

func TestConformanceAssumeRoleProviderRenews(t *testing.T) {
	e := newEmu(t, ecsemu.Config{STS: ecsemu.STSConfig{TokenLifetime: 181 * time.Second}})
	host := tlsSTS(t, e)
	p, err := New(Config{Endpoint: e.srv.URL, Insecure: true,
		Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret},
		AssumeRole:  &AssumeRole{RoleARN: confRole, RoleSessionName: "renew", STSEndpoint: host}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	callUntilRenewed(t, e, p, 3)
	if n := e.emu.Stats().Calls["AssumeRole"]["200"]; n < 3 {
		t.Fatalf("AssumeRole answered 200 %d times, want 3 or more", n)
	}
}

func TestConformanceOIDCProviderRenews(t *testing.T) {
	const iss, aud = "https://oidc.example/cluster-1", "sts.aliyuncs.com"
	e := newEmu(t, ecsemu.Config{STS: ecsemu.STSConfig{TokenLifetime: 181 * time.Second,
		OIDCProviderARN: confProvider, OIDCIssuer: iss, OIDCAudience: aud}})
	host := tlsSTS(t, e)
	enc := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": "RS256"})
	b, _ := json.Marshal(map[string]any{"iss": iss, "aud": aud, "sub": "system:serviceaccount:ops:replicatord", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(enc(h)+"."+enc(b)+"."+enc([]byte("sig"))), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Endpoint: e.srv.URL, Insecure: true,
		AssumeRole: &AssumeRole{RoleARN: confRole, OIDCProviderARN: confProvider, OIDCTokenFile: tokenFile, STSEndpoint: host}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	callUntilRenewed(t, e, p, 3)

	// A token for another audience is refused at the next renewal, and the
	// call fails with the credential error rather than with a stale key.
	b2, _ := json.Marshal(map[string]any{"iss": iss, "aud": "other", "sub": "x", "exp": time.Now().Add(time.Hour).Unix()})
	if err := os.WriteFile(tokenFile, []byte(enc(h)+"."+enc(b2)+"."+enc([]byte("sig"))), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.emu.Stats().Calls["AssumeRoleWithOIDC"]["AuthenticationFail.OIDCToken.AudienceNotMatch"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the SDK never renewed with the new token")
		}
		_, _ = p.DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-hangzhou", OwnerAlias: "self"})
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAssumeRoleConfig(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	if a, err := AssumeRoleFromEnv(get); a != nil || err != nil {
		t.Fatalf("no role ARN: %v %v, want nil nil", a, err)
	}
	env["ALIBABA_CLOUD_ROLE_ARN"] = confRole
	env[STSEndpointEnv] = "127.0.0.1:8443"
	a, err := AssumeRoleFromEnv(get)
	if err != nil || a.RoleARN != confRole || a.STSEndpoint != "127.0.0.1:8443" || a.OIDCProviderARN != "" {
		t.Fatalf("RamRoleArn from env: %+v %v", a, err)
	}
	env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"] = confProvider
	if _, err := AssumeRoleFromEnv(get); err == nil || !strings.Contains(err.Error(), "token file") {
		t.Fatalf("OIDC without a token file: %v", err)
	}
	for _, bad := range []AssumeRole{
		{RoleARN: "role/x"},
		{RoleARN: confRole, STSEndpoint: "https://sts.example"},
		{RoleARN: confRole, Duration: time.Minute},
	} {
		if _, err := New(Config{Endpoint: "127.0.0.1:1", Insecure: true, AssumeRole: &bad}); err == nil || !strings.Contains(err.Error(), "AssumeRole") {
			t.Errorf("%+v: %v, want an AssumeRole error", bad, err)
		}
	}
}
