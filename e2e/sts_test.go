package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key; the daemon
// trusts it through SSL_CERT_FILE, as it would a private CA.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ecsemu"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		// The STS hosts the SDK derives from a profile's sts_region, which
		// credchain_test.go tunnels to the emulator through a proxy.
		DNSNames: []string{"localhost", "sts.aliyuncs.com", "sts.cn-hangzhou.aliyuncs.com"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

type stsStats struct {
	Calls         map[string]map[string]int64 `json:"calls"`
	TokensIssued  int64                       `json:"tokensIssued"`
	TokensRefused int64                       `json:"tokensRefused"`
}

// A daemon whose credentials are a RAM role assumed through ecsemu's STS,
// with sessions that live 185 s: the SDK renews them 180 s before expiry,
// so about every 5 s. It keeps copying across several renewals with no
// failed job, and nothing is refused for an expired token. RamRoleArn signs
// AssumeRole with an access key; OIDC (RRSA) exchanges a token file and the
// daemon has no key at all.
func TestRAMRoleCredentialsRenewWhileCopying(t *testing.T) {
	testRoleRenewal(t, "AssumeRole")
}

func TestOIDCRoleCredentialsRenewWhileCopying(t *testing.T) {
	testRoleRenewal(t, "AssumeRoleWithOIDC")
}

func testRoleRenewal(t *testing.T, action string) {
	const (
		role     = "acs:ram::1234567890123456:role/replicatord"
		provider = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-e2e"
		issuer   = "https://oidc-ack.example/e2e"
	)
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	emu := start(t, "ecsemu", credsEnv(), "--listen", "127.0.0.1:0", "--time-scale", "60", "--seed", "7",
		"--tls-cert", certFile, "--tls-key", keyFile, "--sts-token-lifetime", "185s",
		"--sts-oidc-provider-arn", provider, "--sts-oidc-issuer", issuer, "--sts-oidc-audience", "sts.aliyuncs.com")
	line := emu.waitLine("listening on https://", 30*time.Second)
	endpoint := strings.Fields(line[strings.Index(line, "https://"):])[0]
	host := strings.TrimPrefix(endpoint, "https://")
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	admin := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	stats := func() stsStats {
		t.Helper()
		resp, err := admin.Get(endpoint + "/_ecsemu/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s stsStats
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	e := &env{t: t, dir: dir, endpoint: endpoint}
	e.socket = filepath.Join(dir, "data", "replicatord.sock")
	e.config = filepath.Join(dir, "replicatord.yaml")
	e.writeConfig("")
	env := []string{"SSL_CERT_FILE=" + certFile, "ALIBABA_CLOUD_ROLE_ARN=" + role,
		"ALIBABA_CLOUD_ROLE_SESSION_NAME=e2e", "ALIBABA_CLOUD_STS_ENDPOINT=" + host}
	if action == "AssumeRole" {
		env = append(env, credsEnv()...)
	} else {
		tokenFile := filepath.Join(dir, "token")
		enc := base64.RawURLEncoding.EncodeToString
		claims, _ := json.Marshal(map[string]any{"iss": issuer, "aud": "sts.aliyuncs.com", "sub": "system:serviceaccount:ops:replicatord",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
		if err := os.WriteFile(tokenFile, []byte(enc([]byte(`{"alg":"RS256","kid":"e2e"}`))+"."+enc(claims)+"."+enc([]byte("sig"))), 0o600); err != nil {
			t.Fatal(err)
		}
		// No access key at all: the OIDC token is the only credential.
		env = append(env, "ALIBABA_CLOUD_ACCESS_KEY_ID=", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=",
			"ALIBABA_CLOUD_OIDC_PROVIDER_ARN="+provider, "ALIBABA_CLOUD_OIDC_TOKEN_FILE="+tokenFile)
	}
	e.daemon = start(t, "replicatord", env, "--config", e.config)
	e.daemon.waitLine("replicatord ready", 30*time.Second)

	// Copies of 20 to 120 GiB take 6 to 35 s at this time scale: long
	// enough to span several renewals.
	var ids []string
	for _, img := range []string{imgAlinux, imgUbuntu, imgWindows} {
		out, code := e.ctl("copy", img, "--from", source, "--to", "cn-beijing,cn-shanghai", "--detach", "-o", "json")
		if code != 0 {
			t.Fatalf("copy %s: exit %d:\n%s", img, code, out)
		}
		for id := range jobsIn(t, out) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		e.waitState(id, "JOB_STATE_SUCCEEDED", 3*time.Minute)
	}
	s := stats()
	if n := s.Calls[action]["200"]; n < 3 {
		t.Errorf("%s answered 200 %d times, want 3 or more renewals", action, n)
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
	out, _ := e.ctl("jobs", "-o", "json")
	for id, j := range jobsIn(t, out) {
		if j.State != "JOB_STATE_SUCCEEDED" {
			t.Errorf("job %s is %s", id, j.State)
		}
	}
	if strings.Contains(e.daemon.output(), accessKeySecret) {
		t.Error("the daemon logged the access key secret")
	}
}
