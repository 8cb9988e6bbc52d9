package aliyun

import (
	"net/url"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/signers"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/utils"
)

// The worked example of Alibaba's "Request signatures" page: DescribeRegions
// signed with AccessKeyId testid, secret testsecret, method GET.
var (
	docParams = url.Values{
		"Timestamp":        {"2016-02-23T12:46:24Z"},
		"Format":           {"XML"},
		"AccessKeyId":      {"testid"},
		"Action":           {"DescribeRegions"},
		"SignatureMethod":  {"HMAC-SHA1"},
		"SignatureNonce":   {"3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
		"Version":          {"2014-05-26"},
		"SignatureVersion": {"1.0"},
	}
	docStringToSign = "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML" +
		"%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf" +
		"%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
	docSignature = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
)

// TestSDKSignerMatchesDocumentedExample checks that the SDK's signer, which
// signs every request this package sends, agrees with the spec: the
// emulator verifies the same vector on its side.
func TestSDKSignerMatchesDocumentedExample(t *testing.T) {
	signer := signers.NewAccessKeySigner(credentials.NewAccessKeyCredential("testid", "testsecret"))
	if got := signer.Sign(docStringToSign, "&"); got != docSignature {
		t.Errorf("SDK AccessKeySigner = %q, want %q", got, docSignature)
	}
	if got := utils.ShaHmac1(docStringToSign, "testsecret&"); got != docSignature {
		t.Errorf("SDK utils.ShaHmac1 (used by the RPC composer) = %q, want %q", got, docSignature)
	}
}

// TestFakeVerifierMatchesDocumentedExample checks the test server's own
// verifier, so that "the fake accepted the SDK's signature" means "the
// signature follows the spec".
func TestFakeVerifierMatchesDocumentedExample(t *testing.T) {
	if got := stringToSign("GET", docParams); got != docStringToSign {
		t.Errorf("stringToSign =\n%s\nwant\n%s", got, docStringToSign)
	}
	if got := signRPC("GET", docParams, "testsecret"); got != docSignature {
		t.Errorf("signRPC = %q, want %q", got, docSignature)
	}
	// Spaces are %20 (never +), '*' is %2A and '~' stays.
	if got := percentEncode("a b*c~d/é"); got != "a%20b%2Ac~d%2F%C3%A9" {
		t.Errorf("percentEncode = %q", got)
	}
}
