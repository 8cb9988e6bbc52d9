package ecsemu_test

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/ecsemu"
)

// The example of the Alibaba "Request signatures" document.
var docExample = map[string]string{
	"AccessKeyId":      "testid",
	"Action":           "DescribeRegions",
	"Format":           "XML",
	"SignatureMethod":  "HMAC-SHA1",
	"SignatureNonce":   "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
	"SignatureVersion": "1.0",
	"Timestamp":        "2016-02-23T12:46:24Z",
	"Version":          "2014-05-26",
}

const (
	docStringToSign = "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
	docSignature    = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
)

func TestSignatureDocumentedExample(t *testing.T) {
	if got := ecsemu.StringToSign("GET", docExample); got != docStringToSign {
		t.Fatalf("StringToSign:\n got %s\nwant %s", got, docStringToSign)
	}
	if got := ecsemu.Sign(docStringToSign, "testsecret"); got != docSignature {
		t.Fatalf("Sign = %s, want %s", got, docSignature)
	}
	// The test's own signer agrees, so the rest of the suite signs right.
	if sts, sig := testSign("GET", docExample, "testsecret"); sts != docStringToSign || sig != docSignature {
		t.Fatalf("test signer: %s %s", sts, sig)
	}

	// And the emulator accepts the documented request, sent as GET at the
	// documented time.
	clk := clock.NewFake(time.Date(2016, 2, 23, 12, 50, 0, 0, time.UTC))
	emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{"testid": "testsecret"}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, emu)
	q := url.Values{}
	for k, v := range docExample {
		q.Set(k, v)
	}
	q.Set("Signature", docSignature)
	resp, err := http.Get(srv + "/?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The documented request asks for Format=XML, and gets XML.
	var x struct {
		XMLName   xml.Name
		RequestId string
		Regions   struct {
			Region []struct{ RegionId, LocalName string }
		}
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
		t.Fatalf("documented request: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if err := xml.Unmarshal(body, &x); err != nil || x.XMLName.Local != "DescribeRegionsResponse" || x.RequestId == "" {
		t.Fatalf("XML answer %v: %+v", err, x)
	}
	if n := len(x.Regions.Region); n < 20 || x.Regions.Region[0].RegionId == "" {
		t.Fatalf("DescribeRegions listed %d regions, want about 20", n)
	}
}

func newServer(t *testing.T, emu *ecsemu.Emulator) string {
	srv := httptestServer(emu)
	t.Cleanup(func() { emu.Close(); srv.Close() })
	return srv.URL
}

func TestSignatureOverAwkwardValues(t *testing.T) {
	r := newRig(t, nil)
	// Spaces, &, /, *, ~, +, non-ASCII: the SDK's own encoding must verify,
	// and the name arrives decoded ("+" in the query is a space).
	desc := "desc with spaces & symbols/é*~+x"
	id := r.c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing", "DestinationDescription", desc, "DestinationImageName", "copy:of.image_1")
	if got := r.c.describe("cn-beijing", id)["Description"]; got != desc {
		t.Fatalf("Description = %q, want %q", got, desc)
	}
}

func TestGETAndFormBody(t *testing.T) {
	r := newRig(t, nil)
	// GET: the same query, signed with GET.
	r.c.method = http.MethodGet
	m := r.c.ok("DescribeRegions")
	if len(m["Regions"].(map[string]any)["Region"].([]any)) == 0 {
		t.Fatal("no regions")
	}
	// POST with every parameter in a form body; the signature covers them.
	r.c.method = http.MethodPost
	p := r.c.signed("DescribeImages", "RegionId", "cn-hangzhou", "PageSize", "2")
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	resp, err := http.Post(r.srv.URL+"/", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m = decode(t, resp.StatusCode, body)
	if resp.StatusCode != 200 || m["PageSize"].(float64) != 2 {
		t.Fatalf("form POST: %d %v", resp.StatusCode, m)
	}
	// Split between query and body works too.
	p = r.c.signed("DescribeImages", "RegionId", "cn-hangzhou", "PageSize", "3")
	query, body2 := url.Values{}, url.Values{}
	for k, v := range p {
		if k == "PageSize" || k == "RegionId" {
			body2.Set(k, v)
		} else {
			query.Set(k, v)
		}
	}
	resp, err = http.Post(r.srv.URL+"/?"+query.Encode(), "application/x-www-form-urlencoded", strings.NewReader(body2.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if m = decode(t, resp.StatusCode, body); resp.StatusCode != 200 || m["PageSize"].(float64) != 3 {
		t.Fatalf("split POST: %d %v", resp.StatusCode, m)
	}
}

func TestProtocolErrors(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	mutate := func(action string, f func(p map[string]string)) (int, map[string]any) {
		p := c.signed(action, "RegionId", "cn-hangzhou")
		f(p)
		status, body := c.send(p)
		return status, decode(t, status, body)
	}
	resign := func(p map[string]string) {
		delete(p, "Signature")
		_, p["Signature"] = testSign(http.MethodPost, p, testSecret)
	}
	cases := []struct {
		name   string
		action string
		f      func(p map[string]string)
		status int
		code   string
	}{
		{"missing Action", "DescribeRegions", func(p map[string]string) { delete(p, "Action") }, 400, "MissingParameter"},
		{"missing AccessKeyId", "DescribeRegions", func(p map[string]string) { delete(p, "AccessKeyId") }, 400, "MissingParameter"},
		{"missing Signature", "DescribeRegions", func(p map[string]string) { delete(p, "Signature") }, 400, "MissingParameter"},
		{"missing Timestamp", "DescribeRegions", func(p map[string]string) { delete(p, "Timestamp"); resign(p) }, 400, "MissingParameter"},
		{"missing Version", "DescribeRegions", func(p map[string]string) { delete(p, "Version"); resign(p) }, 400, "MissingParameter"},
		{"unknown key", "DescribeRegions", func(p map[string]string) { p["AccessKeyId"] = "nobody"; resign(p) }, 400, "InvalidAccessKeyId.NotFound"},
		{"wrong secret", "DescribeRegions", func(p map[string]string) {
			delete(p, "Signature")
			_, p["Signature"] = testSign(http.MethodPost, p, "not-the-secret")
		}, 400, "SignatureDoesNotMatch"},
		{"parameter changed after signing", "DescribeImages", func(p map[string]string) { p["RegionId"] = "cn-beijing" }, 400, "SignatureDoesNotMatch"},
		{"empty SignatureType dropped after signing", "DescribeRegions", func(p map[string]string) { delete(p, "SignatureType") }, 400, "SignatureDoesNotMatch"},
		{"signed as GET, sent as POST", "DescribeRegions", func(p map[string]string) {
			delete(p, "Signature")
			_, p["Signature"] = testSign(http.MethodGet, p, testSecret)
		}, 400, "SignatureDoesNotMatch"},
		{"bad SignatureMethod", "DescribeRegions", func(p map[string]string) { p["SignatureMethod"] = "HMAC-SHA256"; resign(p) }, 400, "InvalidParameter"},
		{"bad SignatureVersion", "DescribeRegions", func(p map[string]string) { p["SignatureVersion"] = "2.0"; resign(p) }, 400, "InvalidParameter"},
		{"timestamp 16 minutes old", "DescribeRegions", func(p map[string]string) {
			p["Timestamp"] = t0.Add(-16 * time.Minute).Format("2006-01-02T15:04:05Z")
			resign(p)
		}, 400, "InvalidTimeStamp.Expired"},
		{"timestamp 16 minutes ahead", "DescribeRegions", func(p map[string]string) {
			p["Timestamp"] = t0.Add(16 * time.Minute).Format("2006-01-02T15:04:05Z")
			resign(p)
		}, 400, "InvalidTimeStamp.Expired"},
		{"timestamp not UTC format", "DescribeRegions", func(p map[string]string) { p["Timestamp"] = "yesterday"; resign(p) }, 400, "InvalidTimeStamp.Format"},
		{"bad Version", "DescribeRegions", func(p map[string]string) { p["Version"] = "2016-03-14"; resign(p) }, 400, "InvalidParameter"},
		{"unknown action", "RunInstances", func(p map[string]string) {}, 404, "InvalidAction.NotFound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, m := mutate(tc.action, tc.f)
			if status != tc.status || m["Code"] != tc.code {
				t.Fatalf("got %d %v (%v), want %d %s", status, m["Code"], m["Message"], tc.status, tc.code)
			}
		})
	}

	t.Run("SignatureDoesNotMatch carries the server string to sign", func(t *testing.T) {
		p := c.signed("DescribeRegions")
		p["Signature"] = "AAAA"
		status, body := c.send(p)
		m := decode(t, status, body)
		delete(p, "Signature")
		sts, _ := testSign(http.MethodPost, p, testSecret)
		want := "Specified signature is not matched with our calculation. server string to sign is:" + sts
		if m["Message"] != want {
			t.Fatalf("Message:\n got %v\nwant %s", m["Message"], want)
		}
		if strings.Contains(string(body), testSecret) {
			t.Fatal("the error body contains the secret")
		}
	})

	t.Run("replayed nonce", func(t *testing.T) {
		p := c.signed("DescribeRegions")
		if status, body := c.send(p); status != 200 {
			t.Fatalf("first: %d %s", status, body)
		}
		status, body := c.send(p)
		if m := decode(t, status, body); status != 400 || m["Code"] != "SignatureNonceUsed" {
			t.Fatalf("replay: %d %v", status, m)
		}
		// The same nonce from another key is another nonce, and once the
		// timestamp window has passed the nonce is forgotten but the
		// timestamp then fails instead.
		r.clk.Step(16 * time.Minute)
		status, body = c.send(p)
		if m := decode(t, status, body); m["Code"] != "InvalidTimeStamp.Expired" {
			t.Fatalf("late replay: %d %v", status, m)
		}
	})
}

func TestTransportLevelGarbage(t *testing.T) {
	r := newRig(t, nil)
	do := func(method, target, ctype, body string) (int, map[string]any) {
		req, err := http.NewRequest(method, r.srv.URL+target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, decode(t, resp.StatusCode, b)
	}
	cases := []struct {
		name, method, target, ctype, body string
		status                            int
		code                              string
	}{
		{"PUT", http.MethodPut, "/?Action=DescribeRegions", "", "", 403, "UnsupportedHTTPMethod"},
		{"DELETE", http.MethodDelete, "/", "", "", 403, "UnsupportedHTTPMethod"},
		{"other path", http.MethodGet, "/v1/images", "", "", 404, "InvalidAction.NotFound"},
		{"bad escape", http.MethodGet, "/?Action=%zz", "", "", 400, "InvalidParameter"},
		{"semicolon", http.MethodGet, "/?Action=A;B=1", "", "", 400, "InvalidParameter"},
		{"repeated key", http.MethodGet, "/?Action=DescribeRegions&Action=DescribeImages", "", "", 400, "InvalidParameter"},
		{"query and body repeat a key", http.MethodPost, "/?Action=DescribeRegions", "application/x-www-form-urlencoded", "Action=DescribeImages", 400, "InvalidParameter"},
		{"empty", http.MethodPost, "/", "", "", 400, "MissingParameter"},
		{"JSON body is ignored", http.MethodPost, "/", "application/json", `{"Action":"DescribeRegions"}`, 400, "MissingParameter"},
		{"body too large", http.MethodPost, "/", "application/x-www-form-urlencoded", "a=" + strings.Repeat("x", 1<<20+10), 400, "InvalidParameter"},
		{"too many parameters", http.MethodGet, "/?" + manyParams(1001), "", "", 400, "InvalidParameter"},
		{"huge parameter name", http.MethodGet, "/?" + strings.Repeat("k", 300) + "=1", "", "", 400, "InvalidParameter"},
		{"bad UTF-8", http.MethodGet, "/?Action=%ff%fe&AccessKeyId=%c3%28", "", "", 400, "MissingParameter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, m := do(tc.method, tc.target, tc.ctype, tc.body)
			if status != tc.status || m["Code"] != tc.code {
				t.Fatalf("got %d %v (%v), want %d %s", status, m["Code"], m["Message"], tc.status, tc.code)
			}
		})
	}
}

func manyParams(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "p" + strconv.Itoa(i) + "=x"
	}
	return strings.Join(parts, "&")
}
