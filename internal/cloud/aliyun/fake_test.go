package aliyun

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Test credentials. The secret and token are long and distinctive so that a
// leak into any error or log is found by a substring search.
const (
	testKeyID  = "LTAItestkeyid0001"
	testSecret = "SeCrEt-do-not-leak-4f1c9a"
	testToken  = "STS-token-do-not-leak-7b2e55"
)

// fakeECS is a stand-in for ECS written for these tests: a real HTTP server
// that checks every request's signature with its own implementation of
// signature v1.0 (independent of the SDK's, and checked against the
// documented example in signature_test.go), records the parameters and
// answers with whatever the test's handler says.
type fakeECS struct {
	t       *testing.T
	srv     *httptest.Server
	secrets map[string]string // AccessKeyId -> secret

	mu      sync.Mutex
	reqs    []url.Values
	handler func(w http.ResponseWriter, r *http.Request, q url.Values)
}

func newFakeECS(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, q url.Values)) *fakeECS {
	t.Helper()
	f := &fakeECS{t: t, secrets: map[string]string{testKeyID: testSecret}, handler: handler}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeECS) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		replyJSON(w, 400, map[string]string{"Code": "InvalidParameter", "Message": err.Error(), "RequestId": "bad-form"})
		return
	}
	q := r.Form
	f.mu.Lock()
	secret, known := f.secrets[q.Get("AccessKeyId")]
	f.mu.Unlock()
	if !known {
		replyJSON(w, 400, map[string]string{"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found.", "RequestId": "no-key"})
		return
	}
	if want := signRPC(r.Method, q, secret); q.Get("Signature") != want {
		f.t.Errorf("%s: signature %q, want %q", q.Get("Action"), q.Get("Signature"), want)
		replyJSON(w, 400, map[string]string{"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched with our calculation.", "RequestId": "bad-sig"})
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, q)
	h := f.handler
	f.mu.Unlock()
	if h == nil {
		replyJSON(w, 200, map[string]string{"RequestId": "req-ok"})
		return
	}
	h(w, r, q)
}

// requests returns the parameters of the requests that passed the signature
// check, optionally only those of one action.
func (f *fakeECS) requests(action string) []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []url.Values
	for _, q := range f.reqs {
		if action == "" || q.Get("Action") == action {
			out = append(out, q)
		}
	}
	return out
}

// provider returns a Provider pointed at the fake over plain HTTP with the
// static test keys; mods adjust the config. It is closed when the test ends.
func (f *fakeECS) provider(mods ...func(*Config)) *Provider {
	f.t.Helper()
	cfg := Config{
		Endpoint:    f.srv.URL,
		Insecure:    true,
		Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret},
	}
	for _, m := range mods {
		m(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		f.t.Fatalf("New: %v", err)
	}
	f.t.Cleanup(p.Close)
	return p
}

func replyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func ecsError(w http.ResponseWriter, status int, code, msg string) {
	replyJSON(w, status, map[string]string{"RequestId": "req-" + code, "HostId": "ecs.aliyuncs.com", "Code": code, "Message": msg,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + code})
}

// percentEncode is RFC 3986 encoding as the ECS signature spec defines it.
func percentEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// stringToSign is steps 1-4 of the ECS signature v1.0 spec.
func stringToSign(method string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	pairs := make([]string, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, percentEncode(k)+"="+percentEncode(params.Get(k)))
	}
	return method + "&" + percentEncode("/") + "&" + percentEncode(strings.Join(pairs, "&"))
}

// signRPC is step 5: base64(HMAC-SHA1(secret + "&", StringToSign)).
func signRPC(method string, params url.Values, secret string) string {
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(stringToSign(method, params)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
