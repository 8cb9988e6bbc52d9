package ecsemu

import (
	"net/url"
	"testing"
)

// FuzzVerifySignature checks that a request signed with StringToSign and
// Sign verifies, that changing a value breaks it, and that nothing panics.
func FuzzVerifySignature(f *testing.F) {
	f.Add("AccessKeyId=id&Action=DescribeRegions&SignatureNonce=n&Timestamp=t&SignatureType=", "secret", "GET")
	f.Add("AccessKeyId=id&SignatureNonce=%C3%A9&Timestamp=x&A=%20+%2A~", "s", "POST")
	f.Add("AccessKeyId=id&SignatureNonce=%ff%fe&Timestamp=1&Z=&%00=%01", "\x00", "POST")
	f.Fuzz(func(t *testing.T, raw, secret, method string) {
		vals, err := url.ParseQuery(raw)
		if err != nil || secret == "" {
			return
		}
		p := params{}
		for k, vs := range vals {
			p[k] = vs[0]
		}
		id := p["AccessKeyId"]
		// Garbage never panics.
		_ = checkCommon(p)
		_ = verifySignature(method, p, secret)
		if id == "" || p["SignatureNonce"] == "" || p["Timestamp"] == "" || p["SignatureType"] != "" ||
			p["SignatureMethod"] != "" || p["SignatureVersion"] != "" {
			return
		}
		p["Signature"] = Sign(StringToSign(method, p), secret)
		if aerr := verifySignature(method, p, secret); aerr != nil {
			t.Fatalf("correctly signed request refused: %v", aerr)
		}
		p["Timestamp"] += "x"
		if aerr := verifySignature(method, p, secret); aerr == nil || aerr.Code != "SignatureDoesNotMatch" {
			t.Fatalf("changed request accepted: %v", aerr)
		}
	})
}
