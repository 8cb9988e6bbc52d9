package ecsemu

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Request limits. ECS requests are small; these only keep garbage cheap.
const (
	maxBodyBytes   = 1 << 20
	maxParams      = 1000
	maxKeyLen      = 256
	timestampSkew  = 15 * time.Minute
	timestampForm  = "2006-01-02T15:04:05Z"
	signatureLabel = "server string to sign is:"
)

// params are the merged request parameters (query and form body).
type params map[string]string

// get returns a parameter, "" when absent.
func (p params) get(k string) string { return p[k] }

// parseRequest merges the form-decoded query string and, for a form POST,
// the body. A key given twice is refused: the signature would be ambiguous.
func parseRequest(r *http.Request) (params, *apiError) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, newErr(http.StatusForbidden, "UnsupportedHTTPMethod", "This HTTP method %q is not supported; use GET or POST.", truncate(r.Method, 16))
	}
	p := params{}
	if err := mergeForm(p, r.URL.RawQuery, "query string"); err != nil {
		return nil, err
	}
	if r.Method == http.MethodPost && r.Body != nil {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct == "application/x-www-form-urlencoded" {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
			if err != nil {
				return nil, errInvalid("body", "the request body could not be read")
			}
			if len(body) > maxBodyBytes {
				return nil, errInvalid("body", "the request body is larger than %d bytes", maxBodyBytes)
			}
			if err := mergeForm(p, string(body), "form body"); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func mergeForm(p params, raw, where string) *apiError {
	if raw == "" {
		return nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return errInvalid(where, "it is not a valid form encoding")
	}
	for k, vs := range vals {
		if len(k) > maxKeyLen {
			return errInvalid(truncate(k, 32)+"...", "parameter names are at most %d bytes", maxKeyLen)
		}
		if _, dup := p[k]; dup || len(vs) > 1 {
			return errInvalid(truncate(k, 64), "the parameter is given more than once")
		}
		p[k] = vs[0]
		if len(p) > maxParams {
			return errInvalid(where, "more than %d parameters", maxParams)
		}
	}
	return nil
}

// percentEncode is RFC 3986 encoding as signature v1.0 wants it: unreserved
// characters stay, every other byte becomes %XY with uppercase hex.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3 / 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// StringToSign is the signature v1.0 string to sign for a request with the
// given method and parameters; Signature itself is left out.
func StringToSign(method string, p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var q strings.Builder
	for i, k := range keys {
		if i > 0 {
			q.WriteByte('&')
		}
		q.WriteString(percentEncode(k))
		q.WriteByte('=')
		q.WriteString(percentEncode(p[k]))
	}
	return method + "&" + percentEncode("/") + "&" + percentEncode(q.String())
}

// Sign is Base64(HMAC-SHA1(secret+"&", stringToSign)).
func Sign(stringToSign, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// checkCommon checks the common parameters every signed request carries.
func checkCommon(p params) *apiError {
	for _, k := range []string{"AccessKeyId", "Signature", "SignatureNonce", "Timestamp"} {
		if p.get(k) == "" {
			return errMissing(k)
		}
	}
	if m := p.get("SignatureMethod"); m != "" && m != "HMAC-SHA1" {
		return newErr(http.StatusBadRequest, "InvalidParameter", "The specified SignatureMethod %q is not supported; use HMAC-SHA1.", truncate(m, 32))
	}
	if v := p.get("SignatureVersion"); v != "" && v != "1.0" {
		return newErr(http.StatusBadRequest, "InvalidParameter", "The specified SignatureVersion %q is not supported; use 1.0.", truncate(v, 32))
	}
	if t := p.get("SignatureType"); t != "" {
		return newErr(http.StatusBadRequest, "InvalidParameter", "The specified SignatureType %q is not supported; only access key signatures are.", truncate(t, 32))
	}
	return nil
}

// verifySignature checks the signature with the key's secret. It does not
// look at nonce replay or time; see Emulator.authenticate.
func verifySignature(method string, p params, secret string) *apiError {
	sts := StringToSign(method, p)
	want := Sign(sts, secret)
	if subtle.ConstantTimeCompare([]byte(want), []byte(p.get("Signature"))) != 1 {
		// The string to sign holds no secret; the SDK compares it with its own.
		return newErr(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation. %s%s", signatureLabel, sts)
	}
	return nil
}

// checkTimestamp parses Timestamp and checks it is within ±15 minutes of now.
func checkTimestamp(ts string, now time.Time) (time.Time, *apiError) {
	t, err := time.Parse(timestampForm, ts)
	if err != nil {
		return time.Time{}, newErr(http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted; use UTC %s.", timestampForm)
	}
	if d := now.Sub(t); d > timestampSkew || d < -timestampSkew {
		return time.Time{}, newErr(http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
	}
	return t, nil
}

// truncate shortens s for an error message, keeping it valid UTF-8.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
