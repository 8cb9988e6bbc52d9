package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// Raw HTTP to a running ecsemu, no SDK: every bad request gets the status
// code ECS documents and a JSON error body with string RequestId, HostId,
// Code, Message and Recommend; nothing changes in the emulator's images;
// and it still answers correctly afterwards.
func TestEcsemuRawHTTP(t *testing.T) {
	e := newEnv(t)
	imagesBefore := e.adminImagesRaw()
	good := func() url.Values { return e.signedParams("DescribeImages", map[string]string{"RegionId": source}) }

	// The baseline: a correctly signed request answers 200.
	if status, body := e.rawDo(http.MethodPost, "/", formOf(e.sign(http.MethodPost, good()))); status != 200 || !strings.Contains(body, imgAlinux) {
		t.Fatalf("a signed DescribeImages: %d %s", status, body)
	}

	huge := url.Values{}
	for i := 0; i < 1001; i++ {
		huge.Set(fmt.Sprintf("P%d", i), "x")
	}
	cases := []struct {
		name   string
		method string
		path   string
		query  string // raw query string
		body   string // form body (POST)
		ctype  string // Content-Type of the body; form by default
		status int
		code   string
		msg    string // fragment of Message
	}{
		{name: "missing Action", method: "POST", body: "RegionId=cn-hangzhou", status: 400, code: "MissingParameter", msg: `"Action"`},
		{name: "no parameters at all", method: "GET", status: 400, code: "MissingParameter", msg: "Action"},
		{name: "missing AccessKeyId", method: "POST", body: formWithout(e.sign("POST", good()), "AccessKeyId"), status: 400, code: "MissingParameter", msg: "AccessKeyId"},
		{name: "missing Signature", method: "POST", body: formWithout(e.sign("POST", good()), "Signature"), status: 400, code: "MissingParameter", msg: "Signature"},
		{name: "missing SignatureNonce", method: "POST", body: formWithout(e.sign("POST", good()), "SignatureNonce"), status: 400, code: "MissingParameter", msg: "SignatureNonce"},
		{name: "missing Timestamp", method: "POST", body: formWithout(e.sign("POST", good()), "Timestamp"), status: 400, code: "MissingParameter", msg: "Timestamp"},
		{name: "missing Version (signed)", method: "POST", body: formOf(e.sign("POST", paramsWithout(good(), "Version"))), status: 400, code: "MissingParameter", msg: "Version"},
		{name: "wrong Version (signed)", method: "POST", body: formOf(e.sign("POST", withParam(good(), "Version", "2016-01-01"))), status: 400, code: "InvalidParameter", msg: "2016-01-01"},
		{name: "bad signature", method: "POST", body: formOf(withParam(e.sign("POST", good()), "Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")), status: 400, code: "SignatureDoesNotMatch", msg: "server string to sign is:"},
		{name: "signature of another secret", method: "POST", body: formOf(signWith("POST", good(), "not-the-secret")), status: 400, code: "SignatureDoesNotMatch"},
		{name: "signed for GET, sent as POST", method: "POST", body: formOf(e.sign("GET", good())), status: 400, code: "SignatureDoesNotMatch"},
		{name: "parameter changed after signing", method: "POST", body: formOf(withParam(e.sign("POST", good()), "RegionId", "cn-beijing")), status: 400, code: "SignatureDoesNotMatch"},
		{name: "unknown access key", method: "POST", body: formOf(e.sign("POST", withParam(good(), "AccessKeyId", "LTAInobody"))), status: 400, code: "InvalidAccessKeyId.NotFound"},
		{name: "HMAC-SHA256", method: "POST", body: formOf(e.sign("POST", withParam(good(), "SignatureMethod", "HMAC-SHA256"))), status: 400, code: "InvalidParameter", msg: "SignatureMethod"},
		{name: "signature version 2", method: "POST", body: formOf(e.sign("POST", withParam(good(), "SignatureVersion", "2.0"))), status: 400, code: "InvalidParameter", msg: "SignatureVersion"},
		{name: "bad timestamp", method: "POST", body: formOf(e.sign("POST", withParam(good(), "Timestamp", "yesterday"))), status: 400, code: "InvalidTimeStamp.Format"},
		{name: "expired timestamp", method: "POST", body: formOf(e.sign("POST", withParam(good(), "Timestamp", time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05Z")))), status: 400, code: "InvalidTimeStamp.Expired"},
		{name: "unknown action", method: "POST", body: formOf(e.sign("POST", e.signedParams("DescribeInstances", map[string]string{"RegionId": source}))), status: 404, code: "InvalidAction.NotFound", msg: "Specified api is not found"},
		{name: "unknown action, bad UTF-8", method: "POST", body: formOf(e.sign("POST", e.signedParams("Describe\xff\xfe", map[string]string{"RegionId": source}))), status: 404, code: "InvalidAction.NotFound"},
		{name: "unknown region, bad UTF-8", method: "POST", body: formOf(e.sign("POST", e.signedParams("DescribeImages", map[string]string{"RegionId": "cn-\xff"}))), status: 404, code: "InvalidRegionId.NotFound"},
		{name: "bad UTF-8 parameter name", method: "GET", query: "Action=DescribeImages&%FF%FE=1", status: 400, code: "MissingParameter"},
		{name: "garbage form body", method: "POST", body: "%zz%%&&==;;\x00\x01", status: 400, code: "InvalidParameter", msg: "form body"},
		{name: "garbage query string", method: "GET", query: "Action=%zz", status: 400, code: "InvalidParameter", msg: "query string"},
		{name: "JSON body", method: "POST", body: `{"Action":"DescribeImages"}`, ctype: "application/json", status: 400, code: "MissingParameter", msg: "Action"},
		{name: "binary body", method: "POST", body: "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ctype: "application/octet-stream", status: 400, code: "MissingParameter"},
		{name: "parameter given twice", method: "GET", query: "Action=DescribeImages&Action=DescribeImages", status: 400, code: "InvalidParameter", msg: "more than once"},
		{name: "parameter in query and body", method: "POST", query: "Action=DescribeImages", body: "Action=DescribeImages", status: 400, code: "InvalidParameter", msg: "more than once"},
		{name: "too many parameters", method: "POST", body: huge.Encode() + "&Action=DescribeImages", status: 400, code: "InvalidParameter", msg: "more than 1000 parameters"},
		{name: "huge parameter name", method: "GET", query: strings.Repeat("K", 5000) + "=1", status: 400, code: "InvalidParameter", msg: "at most 256 bytes"},
		{name: "huge query string", method: "GET", query: "Action=DescribeImages&RegionId=" + strings.Repeat("x", 200<<10), status: 400, code: "MissingParameter"},
		{name: "body over 1 MiB", method: "POST", body: "Action=DescribeImages&Pad=" + strings.Repeat("x", 1<<20), status: 400, code: "InvalidParameter", msg: "larger than"},
		{name: "PUT", method: "PUT", body: formOf(e.sign("POST", good())), status: 403, code: "UnsupportedHTTPMethod"},
		{name: "DELETE", method: "DELETE", status: 403, code: "UnsupportedHTTPMethod"},
		{name: "PATCH", method: "PATCH", body: "x", status: 403, code: "UnsupportedHTTPMethod"},
		{name: "another path", method: "GET", path: "/v1/images", status: 404, code: "InvalidAction.NotFound"},
		{name: "CopyImage with a bad signature", method: "POST",
			body:   formOf(withParam(e.sign("POST", e.signedParams("CopyImage", map[string]string{"RegionId": source, "ImageId": imgAlinux, "DestinationRegionId": "cn-beijing"})), "Signature", "bm9wZQ==")),
			status: 400, code: "SignatureDoesNotMatch"},
		{name: "CopyImage without ImageId (signed)", method: "POST",
			body:   formOf(e.sign("POST", e.signedParams("CopyImage", map[string]string{"RegionId": source, "DestinationRegionId": "cn-beijing"}))),
			status: 400, code: "MissingParameter", msg: "ImageId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			if path == "" {
				path = "/"
			}
			if c.query != "" {
				path += "?" + c.query
			}
			req, err := http.NewRequest(c.method, e.endpoint+path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.body != "" {
				ct := c.ctype
				if ct == "" {
					ct = "application/x-www-form-urlencoded"
				}
				req.Header.Set("Content-Type", ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, c.status, raw)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
			checkErrorBody(t, raw, c.code, c.msg)
		})
	}

	// Nothing changed, and the emulator still answers correctly.
	if after := e.adminImagesRaw(); after != imagesBefore {
		t.Errorf("bad requests changed the images")
	}
	status, body := e.rawDo(http.MethodGet, "/?"+e.sign(http.MethodGet, good()).Encode(), "")
	if status != 200 || !strings.Contains(body, imgAlinux) {
		t.Errorf("a signed GET DescribeImages after the bad requests: %d %s", status, body)
	}
	// A nonce is good once.
	p := e.sign(http.MethodPost, good())
	if status, _ := e.rawDo(http.MethodPost, "/", formOf(p)); status != 200 {
		t.Errorf("first use of a nonce: %d", status)
	}
	status, body = e.rawDo(http.MethodPost, "/", formOf(p))
	if status != 400 {
		t.Errorf("replayed nonce: status %d, want 400: %s", status, body)
	}
	checkErrorBody(t, []byte(body), "SignatureNonceUsed", "")
}

// checkErrorBody checks an ECS error body: one JSON object with exactly the
// string fields RequestId, HostId, Code, Message and Recommend, valid UTF-8.
func checkErrorBody(t *testing.T, raw []byte, code, msg string) {
	t.Helper()
	if !utf8.Valid(raw) {
		t.Errorf("body is not valid UTF-8: %q", raw)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		t.Errorf("body is not a JSON object (%v): %.300s", err, raw)
		return
	}
	for _, k := range []string{"RequestId", "HostId", "Code", "Message", "Recommend"} {
		v, ok := m[k].(string)
		if !ok {
			t.Errorf("%s is %T, want a string: %.300s", k, m[k], raw)
			continue
		}
		if v == "" && k != "Recommend" {
			t.Errorf("%s is empty: %.300s", k, raw)
		}
	}
	if m["Code"] != code {
		t.Errorf("Code %v, want %s: %.300s", m["Code"], code, raw)
	}
	if s, _ := m["Message"].(string); !strings.Contains(s, msg) {
		t.Errorf("Message %q does not contain %q", s, msg)
	}
	if len(raw) > 8<<10 {
		t.Errorf("error body is %d bytes; a huge input is echoed back", len(raw))
	}
}

var sigNonce atomic.Int64

// signedParams are the common parameters of an action, unsigned.
func (e *env) signedParams(action string, extra map[string]string) url.Values {
	v := url.Values{}
	v.Set("Action", action)
	v.Set("Version", "2014-05-26")
	v.Set("Format", "JSON")
	v.Set("AccessKeyId", accessKeyID)
	v.Set("SignatureMethod", "HMAC-SHA1")
	v.Set("SignatureVersion", "1.0")
	v.Set("SignatureNonce", fmt.Sprintf("e2e-%d-%d", time.Now().UnixNano(), sigNonce.Add(1)))
	v.Set("Timestamp", time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	for k, x := range extra {
		v.Set(k, x)
	}
	return v
}

func (e *env) sign(method string, v url.Values) url.Values {
	return signWith(method, v, accessKeySecret)
}

// signWith signs v with signature v1.0, written here from the public
// description (not the emulator's code): HMAC-SHA1 with secret+"&" over
// METHOD&%2F&percent(sorted canonical query).
func signWith(method string, v url.Values, secret string) url.Values {
	out := url.Values{}
	var keys []string
	for k, vs := range v {
		if k == "Signature" {
			continue
		}
		out[k] = vs
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var q []string
	for _, k := range keys {
		q = append(q, sigEscape(k)+"="+sigEscape(v.Get(k)))
	}
	sts := method + "&" + sigEscape("/") + "&" + sigEscape(strings.Join(q, "&"))
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(sts))
	out.Set("Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return out
}

func sigEscape(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

func withParam(v url.Values, k, x string) url.Values {
	out := url.Values{}
	for kk, vs := range v {
		out[kk] = vs
	}
	out.Set(k, x)
	return out
}

func paramsWithout(v url.Values, k string) url.Values {
	out := url.Values{}
	for kk, vs := range v {
		if kk != k {
			out[kk] = vs
		}
	}
	return out
}

func formWithout(v url.Values, k string) string { return formOf(paramsWithout(v, k)) }

func formOf(v url.Values) string { return v.Encode() }

func (e *env) rawDo(method, path, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.endpoint+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// adminImagesRaw is every image as the admin API shows it, as text.
func (e *env) adminImagesRaw() string {
	e.t.Helper()
	resp, err := http.Get(e.endpoint + "/_ecsemu/images")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
