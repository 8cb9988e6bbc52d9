package e2e

import (
	"bufio"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The whole credential chain of the daemon (the real binary, the real
// SDK), one mode at a time, offline:
//
//   - the SDK's STS hosts (sts.aliyuncs.com, sts.<sts_region>.aliyuncs.com,
//     which a profile cannot change) are reached through HTTPS_PROXY: a
//     CONNECT proxy in this test tunnels them to ecsemu's TLS port, whose
//     certificate names them and which the daemon trusts through
//     SSL_CERT_FILE;
//   - the ECS metadata service (http://100.100.100.200, hard-coded in the
//     SDK) is reached through HTTP_PROXY: the same proxy answers it, IMDSv2
//     token required, with session keys it gets from ecsemu's STS;
//   - the credentials URI is a server in this test that also hands out
//     ecsemu STS sessions.
//
// Sessions live 182 s and the SDK renews at 180 s left, so every temporary
// mode renews every 2 s or so: while a copy runs, each must renew several
// times with no failed call, no refused request and a job that succeeds.
// Nothing secret may show in the daemon's output.
func TestCredentialChainModes(t *testing.T) {
	const (
		role     = "acs:ram::1234567890123456:role/replicatord"
		provider = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-e2e"
		issuer   = "https://oidc-ack.example/e2e"
		ecsRole  = "replicatord-ecs"
		uriToken = "uri-query-token-not-for-logs-5c"
	)
	type mode struct {
		name      string
		env       func(c *chainEnv) []string
		profile   func(c *chainEnv) string // ~/.aliyun/config.json
		temporary bool                     // renewed: at least 3 renewals expected
	}
	akProfile := func(c *chainEnv) string {
		return fmt.Sprintf(`{"current":"ak","profiles":[{"name":"ak","mode":"AK","access_key_id":%q,"access_key_secret":%q,"region_id":"cn-hangzhou"}]}`, accessKeyID, accessKeySecret)
	}
	modes := []mode{
		{name: "env-AK", env: func(c *chainEnv) []string { return credsEnv() }},
		{name: "env-STS-token", env: func(c *chainEnv) []string {
			s := c.assume("env-sts")
			return []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=" + s.AccessKeyId, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + s.AccessKeySecret, "ALIBABA_CLOUD_SECURITY_TOKEN=" + s.SecurityToken}
		}},
		{name: "profile-AK", profile: akProfile},
		{name: "profile-StsToken", profile: func(c *chainEnv) string {
			s := c.assume("profile-sts")
			return fmt.Sprintf(`{"current":"sts","profiles":[{"name":"sts","mode":"StsToken","access_key_id":%q,"access_key_secret":%q,"sts_token":%q}]}`, s.AccessKeyId, s.AccessKeySecret, s.SecurityToken)
		}},
		{name: "profile-RamRoleArn", temporary: true, profile: func(c *chainEnv) string {
			return fmt.Sprintf(`{"current":"role","profiles":[{"name":"role","mode":"RamRoleArn","access_key_id":%q,"access_key_secret":%q,"ram_role_arn":%q,"ram_session_name":"e2e-profile","expired_seconds":900,"sts_region":"cn-hangzhou"}]}`, accessKeyID, accessKeySecret, role)
		}},
		{name: "profile-ChainableRamRoleArn", temporary: true, profile: func(c *chainEnv) string {
			return fmt.Sprintf(`{"current":"chained","profiles":[{"name":"base","mode":"AK","access_key_id":%q,"access_key_secret":%q},{"name":"chained","mode":"ChainableRamRoleArn","source_profile":"base","ram_role_arn":%q,"ram_session_name":"e2e-chained","expired_seconds":900}]}`, accessKeyID, accessKeySecret, role)
		}},
		{name: "profile-OIDC", temporary: true, profile: func(c *chainEnv) string {
			return fmt.Sprintf(`{"current":"rrsa","profiles":[{"name":"rrsa","mode":"OIDC","ram_role_arn":%q,"oidc_provider_arn":%q,"oidc_token_file":%q,"ram_session_name":"e2e-oidc","expired_seconds":900,"sts_region":"cn-hangzhou"}]}`, role, provider, c.oidcToken(issuer))
		}},
		{name: "profile-EcsRamRole", temporary: true, profile: func(c *chainEnv) string {
			c.meta.enable(ecsRole)
			return fmt.Sprintf(`{"current":"ecs","profiles":[{"name":"ecs","mode":"EcsRamRole","ram_role_name":%q}]}`, ecsRole)
		}},
		// No profile, no key: the chain ends at the instance's RAM role,
		// whose name it asks the metadata service.
		{name: "ECS-RAM-role", temporary: true, env: func(c *chainEnv) []string {
			c.meta.enable(ecsRole)
			return nil
		}},
		{name: "credentials-URI", temporary: true, env: func(c *chainEnv) []string {
			return []string{"ALIBABA_CLOUD_CREDENTIALS_URI=" + c.uri.URL + "/credentials?token=" + uriToken}
		}},
	}
	var outputs []string
	var issued []stsSession // every session this test handed out
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := newChainEnv(t, provider, issuer)
			env := append(c.baseEnv(), "ALIBABA_CLOUD_PROFILE=")
			if m.env != nil {
				env = append(env, m.env(c)...)
			}
			if m.profile != nil {
				dir := filepath.Join(c.home, ".aliyun")
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(m.profile(c)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := c.stats().TokensIssued
			c.daemon = start(t, "replicatord", env, "--config", c.config)
			c.daemon.waitLine("replicatord ready", 60*time.Second)

			out, code := c.ctl("copy", imgUbuntu, "--from", source, "--to", "cn-shanghai", "--detach", "-o", "json")
			if code != 0 {
				t.Fatalf("copy: exit %d:\n%s\n%s", code, out, c.daemon.output())
			}
			for id := range jobsIn(t, out) {
				c.waitState(id, "JOB_STATE_SUCCEEDED", 3*time.Minute)
			}
			s := c.stats()
			n := s.TokensIssued - before
			if m.temporary && n < 4 {
				t.Errorf("%d sessions issued for the daemon, want the first and 3 or more renewals", n)
			}
			if !m.temporary && n != 0 {
				t.Errorf("%d sessions issued for static credentials", n)
			}
			t.Logf("%d sessions issued for the daemon", n)
			if m.temporary && strings.HasPrefix(m.name, "profile-") && !strings.Contains(m.name, "EcsRamRole") && c.proxy.tunnels() == 0 {
				t.Error("the daemon never reached STS through the proxy")
			}
			if s.TokensRefused != 0 {
				t.Errorf("%d calls refused for an expired token", s.TokensRefused)
			}
			for action, codes := range s.Calls {
				for code, n := range codes {
					if code != "200" {
						t.Errorf("%s answered %s %d times; want nothing refused", action, code, n)
					}
				}
			}
			if code := c.daemon.stop(); code != 0 {
				t.Errorf("daemon exit %d after SIGTERM", code)
			}
			outputs = append(outputs, c.daemon.output())
			issued = append(issued, c.issued()...)
		})
	}

	all := strings.Join(outputs, "\n")
	secrets := map[string]string{"access key secret": accessKeySecret, "access key id": accessKeyID, "URI token": uriToken}
	for i, s := range issued {
		secrets[fmt.Sprintf("session %d secret", i)] = s.AccessKeySecret
		secrets[fmt.Sprintf("session %d token", i)] = s.SecurityToken
		secrets[fmt.Sprintf("session %d key id", i)] = s.AccessKeyId
	}
	for name, secret := range secrets {
		if i := strings.Index(all, secret); i >= 0 {
			t.Errorf("the %s appears in the daemon's output: ...%s...", name, all[max(0, i-200):min(len(all), i+len(secret)+50)])
		}
	}
}

// chainEnv is one daemon's cloud: an ecsemu with STS over TLS, the proxy
// that plays the metadata service and tunnels the STS hosts, and a
// credentials URI server.
type chainEnv struct {
	*env
	home   string
	cert   string
	admin  *http.Client
	proxy  *cloudProxy
	meta   *metadataServer
	uri    *httptest.Server
	mu     sync.Mutex
	handed []stsSession
}

type stsSession struct {
	AccessKeyId, AccessKeySecret, SecurityToken, Expiration string
}

func newChainEnv(t *testing.T, oidcProvider, issuer string) *chainEnv {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	emu := start(t, "ecsemu", credsEnv(), "--listen", "127.0.0.1:0", "--time-scale", "60", "--seed", "7",
		"--tls-cert", certFile, "--tls-key", keyFile, "--sts-token-lifetime", "182s",
		"--sts-oidc-provider-arn", oidcProvider, "--sts-oidc-issuer", issuer, "--sts-oidc-audience", "sts.aliyuncs.com")
	line := emu.waitLine("listening on https://", 30*time.Second)
	endpoint := strings.Fields(line[strings.Index(line, "https://"):])[0]
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &chainEnv{env: &env{t: t, dir: dir, endpoint: endpoint, emu: emu}, home: filepath.Join(dir, "home"), cert: certFile,
		admin: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
	if err := os.MkdirAll(c.home, 0o700); err != nil {
		t.Fatal(err)
	}
	c.socket = filepath.Join(dir, "data", "replicatord.sock")
	c.config = filepath.Join(dir, "replicatord.yaml")
	// Polls at least every second, so that the copy's calls span renewals.
	cfg := fmt.Sprintf("version: 1\ndaemon:\n  data_dir: data\ncloud:\n  provider: aliyun\n  endpoint: %s\nscheduler:\n  poll_min: 200ms\n  poll_max: 1s\n", endpoint)
	if err := os.WriteFile(c.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.meta = &metadataServer{c: c, token: "imds-token-" + randomToken(t)}
	c.proxy = &cloudProxy{t: t, sts: strings.TrimPrefix(endpoint, "https://"), metadata: c.meta}
	ps := httptest.NewServer(c.proxy)
	t.Cleanup(func() { ps.Close(); c.proxy.closeTunnels() })
	c.proxy.url = ps.URL
	c.uri = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/credentials" || r.URL.Query().Get("token") == "" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		writeJSON(w, c.assume("uri"))
	}))
	t.Cleanup(c.uri.Close)
	return c
}

// baseEnv is the daemon's environment: no credential variable of the
// test's own environment, HOME for the profile, the proxies and the CA.
func (c *chainEnv) baseEnv() []string {
	env := []string{"HOME=" + c.home, "SSL_CERT_FILE=" + c.cert,
		"HTTPS_PROXY=" + c.proxy.url, "https_proxy=" + c.proxy.url, "HTTP_PROXY=" + c.proxy.url, "http_proxy=" + c.proxy.url,
		"NO_PROXY=", "no_proxy="}
	for _, k := range []string{"ACCESS_KEY_ID", "ACCESS_KEY_SECRET", "SECURITY_TOKEN", "ROLE_ARN", "ROLE_SESSION_NAME",
		"OIDC_PROVIDER_ARN", "OIDC_TOKEN_FILE", "CREDENTIALS_URI", "CREDENTIALS_FILE", "ECS_METADATA", "ECS_METADATA_DISABLED",
		"IMDSV1_DISABLED", "STS_ENDPOINT", "STS_REGION", "VPC_ENDPOINT_ENABLED", "CLI_PROFILE_DISABLED"} {
		env = append(env, "ALIBABA_CLOUD_"+k+"=")
	}
	return env
}

func (c *chainEnv) stats() stsStats {
	c.t.Helper()
	resp, err := c.admin.Get(c.endpoint + "/_ecsemu/stats")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var s stsStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

// assume gets a session from ecsemu's STS, signed with the long-term key
// (signWith, written from the public description of the signature).
func (c *chainEnv) assume(name string) stsSession {
	v := url.Values{}
	for k, x := range map[string]string{"Action": "AssumeRole", "Version": "2015-04-01", "Format": "JSON",
		"AccessKeyId": accessKeyID, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
		"SignatureNonce": fmt.Sprintf("e2e-%d-%d", time.Now().UnixNano(), sigNonce.Add(1)),
		"Timestamp":      time.Now().UTC().Format("2006-01-02T15:04:05Z"), "RoleArn": "acs:ram::1234567890123456:role/replicatord",
		"RoleSessionName": name, "DurationSeconds": "900"} {
		v.Set(k, x)
	}
	resp, err := c.admin.PostForm(c.endpoint+"/", signWith("POST", v, accessKeySecret))
	if err != nil {
		c.t.Errorf("AssumeRole: %v", err)
		return stsSession{}
	}
	defer resp.Body.Close()
	var body struct{ Credentials stsSession }
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil || resp.StatusCode != 200 || body.Credentials.SecurityToken == "" {
		c.t.Errorf("AssumeRole: %d %v", resp.StatusCode, err)
		return stsSession{}
	}
	c.mu.Lock()
	c.handed = append(c.handed, body.Credentials)
	c.mu.Unlock()
	return body.Credentials
}

func (c *chainEnv) issued() []stsSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]stsSession(nil), c.handed...)
}

// oidcToken writes a service-account token as ACK projects it.
func (c *chainEnv) oidcToken(issuer string) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"iss": issuer, "aud": "sts.aliyuncs.com", "sub": "system:serviceaccount:ops:replicatord",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	file := filepath.Join(c.dir, "oidc-token")
	if err := os.WriteFile(file, []byte(enc([]byte(`{"alg":"RS256","kid":"e2e"}`))+"."+enc(claims)+"."+enc([]byte("sig"))), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return file
}

// metadataServer plays the ECS instance metadata service for one RAM role,
// IMDSv2 only (every read needs the token a PUT handed out, as on an
// instance hardened that way). Until enabled it answers 404, as a host
// that is no ECS instance would fail.
type metadataServer struct {
	c     *chainEnv
	token string
	mu    sync.Mutex
	role  string
}

func (m *metadataServer) enable(role string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.role = role
}

func (m *metadataServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	role := m.role
	m.mu.Unlock()
	const prefix = "/latest/meta-data/ram/security-credentials/"
	switch {
	case role == "":
		http.NotFound(w, r)
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		if r.Header.Get("X-aliyun-ecs-metadata-token-ttl-seconds") == "" {
			http.Error(w, "ttl header missing", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, m.token)
	case r.Method != http.MethodGet:
		http.Error(w, "method", http.StatusMethodNotAllowed)
	case r.Header.Get("X-aliyun-ecs-metadata-token") != m.token:
		http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
	case r.URL.Path == prefix:
		fmt.Fprint(w, role)
	case r.URL.Path == prefix+role:
		s := m.c.assume("ecs-" + role)
		writeJSON(w, map[string]string{"Code": "Success", "AccessKeyId": s.AccessKeyId, "AccessKeySecret": s.AccessKeySecret,
			"SecurityToken": s.SecurityToken, "Expiration": s.Expiration, "LastUpdated": time.Now().UTC().Format("2006-01-02T15:04:05Z")})
	default:
		http.NotFound(w, r)
	}
}

// cloudProxy is the daemon's HTTP(S) proxy: CONNECT to an STS host is
// tunnelled to ecsemu, plain HTTP to 100.100.100.200 is the metadata
// service, anything else is refused (the test is offline).
type cloudProxy struct {
	t        testing.TB
	url, sts string
	metadata http.Handler
	mu       sync.Mutex
	conns    []net.Conn
	n        int
}

func (p *cloudProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		if r.URL.Host != "100.100.100.200" {
			http.Error(w, "offline", http.StatusForbidden)
			return
		}
		p.metadata.ServeHTTP(w, r)
		return
	}
	switch r.Host {
	case "sts.aliyuncs.com:443", "sts.cn-hangzhou.aliyuncs.com:443":
	default:
		http.Error(w, "offline", http.StatusForbidden)
		return
	}
	dst, err := net.Dial("tcp", p.sts)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		dst.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, conn, dst)
	p.n++
	p.mu.Unlock()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		conn.Close()
		dst.Close()
		return
	}
	go func() { _, _ = io.Copy(dst, bufio.NewReader(io.MultiReader(brw.Reader, conn))); dst.Close() }()
	go func() { _, _ = io.Copy(conn, dst); conn.Close() }()
}

func (p *cloudProxy) tunnels() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *cloudProxy) closeTunnels() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func randomToken(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := io.ReadFull(cryptorand.Reader, b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
