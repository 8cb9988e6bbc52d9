package aliyun

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The SDK's default chain, after every provider failed once, asks only the
// last one it tried; ours builds a fresh chain after a failure, so a
// profile (or a metadata service) that appears while the daemon retries
// CheckCredentials at start is found.
func TestDefaultChainLooksAgainAfterFailure(t *testing.T) {
	clearCredentialEnv(t)
	p, err := New(Config{Endpoint: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.CheckCredentials(); err == nil {
		t.Fatal("credentials found with none anywhere")
	}
	writeCLIConfig(t, fmt.Sprintf(`{"current":"late","profiles":[{"name":"late","mode":"AK","access_key_id":%q,"access_key_secret":%q}]}`, testKeyID, testSecret))
	if err := p.CheckCredentials(); err != nil {
		t.Fatalf("the profile written after a failure is not found: %v", err)
	}
	cc, err := p.creds.GetCredentials()
	if err != nil || cc.AccessKeyId != testKeyID {
		t.Fatalf("AccessKeyId %q, %v", cc.AccessKeyId, err)
	}
}

// A credentials URI that answers the secret but no expiry makes the SDK
// quote the whole answer, and its URL (with a token in the query) in the
// error; neither reaches ours.
func TestCredentialsURIAnswerNotQuoted(t *testing.T) {
	const uriToken = "uri-query-token-do-not-leak-31"
	for name, tc := range map[string]struct {
		status int
		body   string
	}{
		"no expiry":  {200, fmt.Sprintf(`{"AccessKeyId":%q,"AccessKeySecret":%q,"SecurityToken":%q}`, "STS.x", testSecret, testToken)},
		"refused":    {403, fmt.Sprintf(`{"denied":%q}`, testSecret)},
		"not json":   {200, "AccessKeySecret=" + testSecret},
		"multi-line": {500, "oops\n" + testSecret + "\n"},
	} {
		t.Run(name, func(t *testing.T) {
			clearCredentialEnv(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			t.Setenv("ALIBABA_CLOUD_CREDENTIALS_URI", srv.URL+"/creds?token="+uriToken)
			p, err := New(Config{Endpoint: "127.0.0.1:1"})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			err = p.CheckCredentials()
			if err == nil {
				t.Fatal("CheckCredentials succeeded with a broken credentials URI and nothing else")
			}
			// The source's own error, before the adapter clips it.
			_, raw := p.creds.GetCredentials()
			if raw == nil {
				t.Fatal("the source succeeded with a broken credentials URI")
			}
			for _, msg := range []string{err.Error(), raw.Error()} {
				for _, secret := range []string{testSecret, testToken, uriToken} {
					if strings.Contains(msg, secret) {
						t.Errorf("%q in error: %s", secret, msg)
					}
				}
			}
			if msg := raw.Error(); !strings.Contains(msg, srv.URL+"/creds") || !strings.Contains(msg, "answer not shown") {
				t.Errorf("error does not say which URI failed: %s", msg)
			}
		})
	}
}
