package ecsemu_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/ecsemu"
)

const (
	testKeyID  = "testid"
	testSecret = "testsecret"
)

// t0 is where the fake clock starts in most tests.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// rig is an emulator behind a real HTTP server, with a fake clock.
type rig struct {
	t   *testing.T
	emu *ecsemu.Emulator
	srv *httptest.Server
	clk *clock.Fake
	c   *client
}

// newRig starts an emulator; mod may change the config first.
func newRig(t *testing.T, mod func(*ecsemu.Config)) *rig {
	t.Helper()
	clk := clock.NewFake(t0)
	cfg := ecsemu.Config{Credentials: map[string]string{testKeyID: testSecret}, Clock: clk, Seed: 7}
	if mod != nil {
		mod(&cfg)
	}
	emu, err := ecsemu.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(func() {
		emu.Close()
		srv.Close()
	})
	return &rig{t: t, emu: emu, srv: srv, clk: clk, c: newClient(t, srv.URL, clk)}
}

// client is a tiny ECS RPC client written from the signature spec; it
// shares no code with the emulator (it encodes the way the SDK does:
// url.Values.Encode, then +→%20, *→%2A, %7E→~).
type client struct {
	t        testing.TB
	base     string
	clk      clock.Clock
	id       string
	secret   string
	method   string
	nonceSeq atomic.Int64
	http     *http.Client
}

func newClient(t testing.TB, base string, clk clock.Clock) *client {
	return &client{t: t, base: base, clk: clk, id: testKeyID, secret: testSecret, method: http.MethodPost, http: &http.Client{Timeout: 30 * time.Second}}
}

func sdkEncode(s string) string {
	s = url.QueryEscape(s)
	s = strings.ReplaceAll(s, "+", "%20")
	s = strings.ReplaceAll(s, "*", "%2A")
	return strings.ReplaceAll(s, "%7E", "~")
}

// testSign signs params (without Signature) for method.
func testSign(method string, p map[string]string, secret string) (sts, sig string) {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = sdkEncode(k) + "=" + sdkEncode(p[k])
	}
	sts = method + "&%2F&" + sdkEncode(strings.Join(pairs, "&"))
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(sts))
	return sts, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// commonParams are what the SDK sends with every call.
func (c *client) commonParams(action string) map[string]string {
	return map[string]string{
		"AccessKeyId":      c.id,
		"Action":           action,
		"Format":           "JSON",
		"SignatureMethod":  "HMAC-SHA1",
		"SignatureNonce":   fmt.Sprintf("%032x", c.nonceSeq.Add(1)),
		"SignatureType":    "",
		"SignatureVersion": "1.0",
		"Timestamp":        c.clk.Now().UTC().Format("2006-01-02T15:04:05Z"),
		"Version":          "2014-05-26",
	}
}

// signed returns the full, signed parameter set for an action.
func (c *client) signed(action string, kv ...string) map[string]string {
	p := c.commonParams(action)
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	_, p["Signature"] = testSign(c.method, p, c.secret)
	return p
}

// send posts already signed params in the query (as the SDK does).
func (c *client) send(p map[string]string) (int, []byte) {
	c.t.Helper()
	q := url.Values{}
	for k, v := range p {
		q.Set(k, v)
	}
	req, err := http.NewRequest(c.method, c.base+"/?"+q.Encode(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", p["Action"], err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// call signs and sends an action; kv are alternating names and values.
func (c *client) call(action string, kv ...string) (int, map[string]any) {
	c.t.Helper()
	status, body := c.send(c.signed(action, kv...))
	return status, decode(c.t, status, body)
}

// ok calls an action that must succeed and returns its body.
func (c *client) ok(action string, kv ...string) map[string]any {
	c.t.Helper()
	status, m := c.call(action, kv...)
	if status != http.StatusOK {
		c.t.Fatalf("%s %v: status %d, body %v", action, kv, status, m)
	}
	return m
}

// fails calls an action that must fail with status and code; it returns
// the Message.
func (c *client) fails(status int, code, action string, kv ...string) string {
	c.t.Helper()
	got, m := c.call(action, kv...)
	if got != status || m["Code"] != code {
		c.t.Fatalf("%s %v: got %d %v (%v), want %d %s", action, kv, got, m["Code"], m["Message"], status, code)
	}
	return m["Message"].(string)
}

// decode parses a body; an error body must carry the five string fields.
func decode(t testing.TB, status int, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("status %d: body is not a JSON object: %v: %q", status, err, body)
	}
	if _, ok := m["RequestId"].(string); !ok {
		t.Fatalf("status %d: RequestId is not a string: %q", status, body)
	}
	if status >= 300 {
		for _, k := range []string{"HostId", "Code", "Message", "Recommend"} {
			if s, ok := m[k].(string); !ok || s == "" {
				t.Fatalf("status %d: error field %s is not a non-empty string: %q", status, k, body)
			}
		}
	}
	return m
}

// images returns DescribeImages' Images.Image list.
func images(m map[string]any) []map[string]any {
	list := m["Images"].(map[string]any)["Image"].([]any)
	out := make([]map[string]any, len(list))
	for i, v := range list {
		out[i] = v.(map[string]any)
	}
	return out
}

// describe returns one image in any status, or nil when it does not exist.
func (c *client) describe(region, id string) map[string]any {
	c.t.Helper()
	m := c.ok("DescribeImages", "RegionId", region, "ImageId", id, "Status", "Waiting,Creating,Available,CreateFailed,UnAvailable,Deprecated")
	imgs := images(m)
	switch len(imgs) {
	case 0:
		return nil
	case 1:
		return imgs[0]
	}
	c.t.Fatalf("DescribeImages %s: %d images", id, len(imgs))
	return nil
}

// statusOf returns Status of an image ("" when gone).
func (c *client) statusOf(region, id string) string {
	c.t.Helper()
	if im := c.describe(region, id); im != nil {
		return im["Status"].(string)
	}
	return ""
}

// copyImage starts a copy and returns the new id.
func (c *client) copyImage(src, id, dst string, kv ...string) string {
	c.t.Helper()
	args := append([]string{"RegionId", src, "ImageId", id, "DestinationRegionId", dst}, kv...)
	return c.ok("CopyImage", args...)["ImageId"].(string)
}

// Demo image ids used across tests.
const (
	demoUbuntu   = "m-bp1g7004ksh0oeuco4r2" // 40 GiB, Available, cn-hangzhou
	demoAlinux   = "m-bp1f5c9ka0z2wn3hj6ys" // 20 GiB
	demoWindows  = "m-bp17h2k9s0d4f6g8j1lz" // 120 GiB
	demoHuge     = "m-bp1z9x7c5v3b1n8m6k4j" // 320 GiB
	demoBuilding = "m-bp1h6g4f2d0s8a7l5k3j" // Creating
)

func httptestServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

// fakeAt returns a fake clock at t0.
func fakeAt() *clock.Fake { return clock.NewFake(t0) }
