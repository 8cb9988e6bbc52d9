package ecsemu_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

const (
	testRole     = "acs:ram::1234567890123456:role/replicator"
	testProvider = "acs:ram::1234567890123456:oidc-provider/ack-rrsa"
)

// stsCall signs an STS (2015-04-01) call with the client's key, or with an
// STS key and token when sk is given.
func (c *client) stsCall(action string, sk *stsKey, kv ...string) (int, map[string]any) {
	c.t.Helper()
	p := c.commonParams(action)
	p["Version"] = "2015-04-01"
	secret := c.secret
	if sk != nil {
		p["AccessKeyId"], p["SecurityToken"], secret = sk.id, sk.token, sk.secret
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	_, p["Signature"] = testSign(c.method, p, secret)
	status, body := c.send(p)
	return status, decode(c.t, status, body)
}

// ecsWith calls an ECS action signed with an STS key (token as given).
func (c *client) ecsWith(sk stsKey, action string, kv ...string) (int, map[string]any) {
	c.t.Helper()
	p := c.commonParams(action)
	p["AccessKeyId"] = sk.id
	if sk.token != "" {
		p["SecurityToken"] = sk.token
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	_, p["Signature"] = testSign(c.method, p, sk.secret)
	status, body := c.send(p)
	return status, decode(c.t, status, body)
}

type stsKey struct{ id, secret, token, expiration string }

func keyOf(t *testing.T, m map[string]any) stsKey {
	t.Helper()
	cr, ok := m["Credentials"].(map[string]any)
	if !ok {
		t.Fatalf("no Credentials in %v", m)
	}
	k := stsKey{id: cr["AccessKeyId"].(string), secret: cr["AccessKeySecret"].(string), token: cr["SecurityToken"].(string), expiration: cr["Expiration"].(string)}
	if !strings.HasPrefix(k.id, "STS.") || k.secret == "" || !strings.HasPrefix(k.token, "CAIS") {
		t.Fatalf("credentials do not look like STS ones: %+v", k)
	}
	return k
}

func TestSTSAssumeRoleCredentialsWorkForECSUntilTheyExpire(t *testing.T) {
	r := newRig(t, nil)
	status, m := r.c.stsCall("AssumeRole", nil, "RoleArn", testRole, "RoleSessionName", "replicatord", "DurationSeconds", "900")
	if status != http.StatusOK {
		t.Fatalf("AssumeRole: %d %v", status, m)
	}
	k := keyOf(t, m)
	if want := t0.Add(900 * time.Second).Format("2006-01-02T15:04:05Z"); k.expiration != want {
		t.Errorf("Expiration %s, want %s (DurationSeconds from now)", k.expiration, want)
	}
	if u := m["AssumedRoleUser"].(map[string]any); u["Arn"] != testRole+"/replicatord" || !strings.HasSuffix(u["AssumedRoleId"].(string), ":replicatord") {
		t.Errorf("AssumedRoleUser %v", u)
	}
	if s, body := r.c.ecsWith(k, "DescribeRegions"); s != http.StatusOK {
		t.Fatalf("ECS with STS credentials: %d %v", s, body)
	}
	if s, body := r.c.stsCall("GetCallerIdentity", &k); s != http.StatusOK || body["IdentityType"] != "AssumedRoleUser" ||
		body["Arn"] != "acs:ram::1234567890123456:assumed-role/replicator/replicatord" || body["AccountId"] != "1234567890123456" {
		t.Fatalf("GetCallerIdentity with STS credentials: %d %v", s, body)
	}
	if s, body := r.c.stsCall("GetCallerIdentity", nil); s != http.StatusOK || body["IdentityType"] != "RAMUser" {
		t.Fatalf("GetCallerIdentity with a RAM user key: %d %v", s, body)
	}

	r.clk.Step(900*time.Second - time.Second)
	if s, body := r.c.ecsWith(k, "DescribeRegions"); s != http.StatusOK {
		t.Fatalf("a second before expiry: %d %v", s, body)
	}
	r.clk.Step(time.Second)
	s, body := r.c.ecsWith(k, "DescribeRegions")
	if s != http.StatusBadRequest || body["Code"] != "InvalidSecurityToken.Expired" {
		t.Fatalf("at expiry: %d %v, want 400 InvalidSecurityToken.Expired", s, body)
	}
	if st := r.emu.Stats(); st.TokensIssued != 1 || st.TokensRefused != 1 || st.Sessions != 0 {
		t.Errorf("stats: issued %d refused %d sessions %d, want 1 1 0", st.TokensIssued, st.TokensRefused, st.Sessions)
	}
}

func TestSTSTokenLifetimeOverridesDurationSeconds(t *testing.T) {
	r := newRig(t, func(c *ecsemu.Config) { c.STS.TokenLifetime = 190 * time.Second })
	_, m := r.c.stsCall("AssumeRole", nil, "RoleArn", testRole, "RoleSessionName", "s1", "DurationSeconds", "3600")
	k := keyOf(t, m)
	if want := t0.Add(190 * time.Second).Format("2006-01-02T15:04:05Z"); k.expiration != want {
		t.Fatalf("Expiration %s, want %s", k.expiration, want)
	}
	r.clk.Step(190 * time.Second)
	if s, body := r.c.ecsWith(k, "DescribeRegions"); body["Code"] != "InvalidSecurityToken.Expired" {
		t.Fatalf("after the configured lifetime: %d %v", s, body)
	}
}

func TestSTSSecurityTokenChecks(t *testing.T) {
	r := newRig(t, nil)
	_, m := r.c.stsCall("AssumeRole", nil, "RoleArn", testRole, "RoleSessionName", "s1")
	k := keyOf(t, m)
	_, m2 := r.c.stsCall("AssumeRole", nil, "RoleArn", testRole, "RoleSessionName", "s2")
	other := keyOf(t, m2)
	for _, tc := range []struct {
		name string
		key  stsKey
		code string
	}{
		{"no token", stsKey{id: k.id, secret: k.secret}, "MissingSecurityToken"},
		{"another session's token", stsKey{id: k.id, secret: k.secret, token: other.token}, "InvalidSecurityToken.MismatchWithAccessKey"},
		{"unknown key, unknown token", stsKey{id: "STS.NUnknown", secret: k.secret, token: "CAISbogus"}, "InvalidSecurityToken.Malformed"},
		{"unknown key, real token", stsKey{id: "STS.NUnknown", secret: k.secret, token: k.token}, "InvalidSecurityToken.MismatchWithAccessKey"},
		{"long-term key with a token", stsKey{id: testKeyID, secret: testSecret, token: k.token}, "InvalidSecurityToken.MismatchWithAccessKey"},
		{"unknown key, no token", stsKey{id: "LTAInope", secret: "x"}, "InvalidAccessKeyId.NotFound"},
		{"right token, wrong secret", stsKey{id: k.id, secret: other.secret, token: k.token}, "SignatureDoesNotMatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, body := r.c.ecsWith(tc.key, "DescribeRegions")
			if s != http.StatusBadRequest || body["Code"] != tc.code {
				t.Fatalf("got %d %v, want 400 %s", s, body, tc.code)
			}
		})
	}
}

func TestSTSAssumeRoleRefusesBadParameters(t *testing.T) {
	r := newRig(t, nil)
	for _, tc := range []struct {
		name   string
		kv     []string
		status int
		code   string
	}{
		{"no role", []string{"RoleSessionName", "s1"}, 400, "MissingParameter"},
		{"malformed role", []string{"RoleArn", "arn:aws:iam::1:role/x", "RoleSessionName", "s1"}, 400, "InvalidParameter.RoleArn"},
		{"role of another account", []string{"RoleArn", "acs:ram::999:role/x", "RoleSessionName", "s1"}, 404, "EntityNotExist.Role"},
		{"no session name", []string{"RoleArn", testRole}, 400, "MissingParameter"},
		{"bad session name", []string{"RoleArn", testRole, "RoleSessionName", "a*b"}, 400, "InvalidParameter.RoleSessionName"},
		{"duration too short", []string{"RoleArn", testRole, "RoleSessionName", "s1", "DurationSeconds", "899"}, 400, "InvalidParameter.DurationSeconds"},
		{"duration too long", []string{"RoleArn", testRole, "RoleSessionName", "s1", "DurationSeconds", "3601"}, 400, "InvalidParameter.DurationSeconds"},
		{"policy not JSON", []string{"RoleArn", testRole, "RoleSessionName", "s1", "Policy", "{"}, 400, "InvalidParameter.PolicyGrammar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, body := r.c.stsCall("AssumeRole", nil, tc.kv...)
			if s != tc.status || body["Code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", s, body, tc.status, tc.code)
			}
		})
	}
	if s, body := r.c.stsCall("AssumeRoleWithSAML", nil); s != http.StatusNotFound || body["Code"] != "InvalidAction.NotFound" {
		t.Fatalf("unknown STS action: %d %v", s, body)
	}
	if st := r.emu.Stats(); st.TokensIssued != 0 {
		t.Fatalf("refused calls issued %d tokens", st.TokensIssued)
	}
}

// jwt builds an unsigned-looking RS256 JWT with the given claims; the
// emulator does not verify signatures, only shape and claims.
func jwt(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "k1"})
	b, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(b) + "." + enc([]byte("signature"))
}

// oidcCall sends AssumeRoleWithOIDC as the SDK does: unsigned, the
// parameters in a form body.
func (c *client) oidcCall(kv ...string) (int, map[string]any) {
	c.t.Helper()
	q := url.Values{"Version": {"2015-04-01"}, "Action": {"AssumeRoleWithOIDC"}, "Format": {"JSON"}, "Timestamp": {c.clk.Now().UTC().Format("2006-01-02T15:04:05Z")}}
	form := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Set(kv[i], kv[i+1])
	}
	req, _ := http.NewRequest(http.MethodPost, c.base+"/?"+q.Encode(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, decode(c.t, resp.StatusCode, body)
}

func TestSTSAssumeRoleWithOIDCChecksTheToken(t *testing.T) {
	const iss, aud = "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/c1", "sts.aliyuncs.com"
	r := newRig(t, func(c *ecsemu.Config) {
		c.STS = ecsemu.STSConfig{OIDCProviderARN: testProvider, OIDCIssuer: iss, OIDCAudience: aud}
	})
	good := map[string]any{"iss": iss, "aud": []string{aud}, "sub": "system:serviceaccount:ops:replicatord", "exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix()}
	with := func(k string, v any) string {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return jwt(c)
	}
	s, m := r.c.oidcCall("RoleArn", testRole, "OIDCProviderArn", testProvider, "OIDCToken", jwt(good), "RoleSessionName", "pod-1")
	if s != http.StatusOK {
		t.Fatalf("AssumeRoleWithOIDC: %d %v", s, m)
	}
	k := keyOf(t, m)
	if info := m["OIDCTokenInfo"].(map[string]any); info["Subject"] != good["sub"] || info["Issuer"] != iss || info["ClientIds"] != aud {
		t.Errorf("OIDCTokenInfo %v", info)
	}
	if s, body := r.c.ecsWith(k, "DescribeRegions"); s != http.StatusOK {
		t.Fatalf("ECS with OIDC-issued credentials: %d %v", s, body)
	}
	for _, tc := range []struct {
		name, provider, token, code string
		status                      int
	}{
		{"other provider", "acs:ram::1234567890123456:oidc-provider/other", jwt(good), "AuthenticationFail.NoPermission", 401},
		{"malformed provider", "oidc", jwt(good), "InvalidParameter.OIDCProviderArn", 400},
		{"empty token", testProvider, "", "AuthenticationFail.OIDCToken.Invalid", 401},
		{"two parts", testProvider, "a.b", "AuthenticationFail.OIDCToken.Invalid", 401},
		{"not base64", testProvider, "!!.??.x", "AuthenticationFail.OIDCToken.Invalid", 401},
		{"expired", testProvider, with("exp", t0.Add(-time.Second).Unix()), "AuthenticationFail.OIDCToken.Expired", 401},
		{"no exp", testProvider, with("exp", nil), "AuthenticationFail.OIDCToken.Expired", 401},
		{"other issuer", testProvider, with("iss", "https://evil.example"), "AuthenticationFail.OIDCToken.IssuerNotMatch", 401},
		{"other audience", testProvider, with("aud", "someone-else"), "AuthenticationFail.OIDCToken.AudienceNotMatch", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, body := r.c.oidcCall("RoleArn", testRole, "OIDCProviderArn", tc.provider, "OIDCToken", tc.token)
			if s != tc.status || body["Code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", s, body, tc.status, tc.code)
			}
		})
	}
	h, _ := json.Marshal(map[string]string{"alg": "none"})
	b, _ := json.Marshal(good)
	none := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(b) + "."
	if s, body := r.c.oidcCall("RoleArn", testRole, "OIDCProviderArn", testProvider, "OIDCToken", none); s != 401 || body["Code"] != "AuthenticationFail.OIDCToken.Invalid" {
		t.Fatalf("alg none: %d %v", s, body)
	}
}

func TestSTSConfigValidation(t *testing.T) {
	for _, sc := range []ecsemu.STSConfig{
		{AccountID: "12ab"},
		{TokenLifetime: -time.Second},
		{TokenLifetime: time.Millisecond},
		{OIDCProviderARN: "acs:ram::1:role/x"},
	} {
		if _, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{"a": "b"}, STS: sc}); err == nil || !strings.Contains(err.Error(), "STS:") {
			t.Errorf("%+v: err %v, want an STS error", sc, err)
		}
	}
}
