package aliyun

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/replicatord/replicatord/internal/cloud"
)

// maxMessage bounds the message kept from an error body: enough for any ECS
// message, short enough that an HTML error page does not flood a log line.
const maxMessage = 300

// sdkPanic is a panic recovered from inside the SDK.
type sdkPanic struct{ value string }

func (e *sdkPanic) Error() string { return "the SDK could not read the response: " + e.value }

// invalidResponse is a 2xx answer the adapter cannot use.
type invalidResponse struct {
	msg       string
	requestID string
}

func (e *invalidResponse) Error() string { return e.msg }

// toCloudError turns any failure of an SDK call into a *cloud.Error with a
// code, a class and a message fit for users: no URL (it carries the access
// key id and, with STS, the security token), no secret, no string to sign,
// at most maxMessage characters.
func (p *Provider) toCloudError(action, region string, err error) *cloud.Error {
	ce := &cloud.Error{Action: action, Region: region}
	var (
		se   *sdkerrors.ServerError
		cle  *sdkerrors.ClientError
		ue   *url.Error
		cred *credentialError
		pan  *sdkPanic
		inv  *invalidResponse
	)
	switch {
	case errors.As(err, &se):
		ce.HTTPStatus = se.HttpStatus()
		ce.Code = se.ErrorCode()
		ce.RequestID = se.RequestId()
		ce.Message = se.Message()
		if ce.Code == "" {
			// Not an ECS error body: an HTML page from a proxy or load
			// balancer, or JSON without a Code. The status is all we know.
			ce.Code = strconv.Itoa(ce.HTTPStatus)
			ce.Message = "unrecognised error response: " + collapseSpace(se.Message())
		}
		ce.Message = trimSignatureDump(ce.Code, ce.Message)
	case errors.As(err, &ue):
		ce.Code, ce.Message = transportError(ue)
	case errors.As(err, &cle):
		switch cle.ErrorCode() {
		case sdkerrors.TimeoutErrorCode:
			ce.Code = CodeTimeout
		case sdkerrors.JsonUnmarshalErrorCode:
			ce.Code = CodeInvalidResponse
		default:
			ce.Code = cle.ErrorCode()
		}
		ce.Message = cle.Message()
		if origin := cle.OriginError(); origin != nil {
			if errors.As(origin, &ue) {
				ce.Code, ce.Message = transportError(ue)
			} else {
				ce.Message += ": " + origin.Error()
			}
		}
	case errors.As(err, &cred):
		ce.Code = CodeCredentials
		ce.Message = cred.Error()
	case errors.As(err, &pan):
		ce.Code = CodeInvalidResponse
		ce.Message = pan.Error()
	case errors.As(err, &inv):
		ce.Code = CodeInvalidResponse
		ce.HTTPStatus = 200
		ce.RequestID = inv.requestID
		ce.Message = inv.msg
	default:
		ce.Code = sdkerrors.DefaultClientErrorCode
		ce.Message = err.Error()
	}
	ce.Message = shorten(p.creds.scrub(ce.Message), maxMessage)
	ce.Class = Classify(ce.Code, ce.HTTPStatus)
	return ce
}

// transportError describes a failed HTTP exchange without its URL.
func transportError(ue *url.Error) (code, msg string) {
	code = CodeTransport
	if ue.Timeout() {
		code = CodeTimeout
	}
	msg = ue.Op + ": "
	if ue.Err != nil {
		msg += ue.Err.Error()
	}
	return code, msg
}

// trimSignatureDump keeps the first sentence of a signature error: ECS
// appends "server string to sign is: ..." (every parameter of the request),
// which is no use to a user and long.
func trimSignatureDump(code, msg string) string {
	if code != "SignatureDoesNotMatch" && code != "IncompleteSignature" {
		return msg
	}
	if i := strings.Index(msg, sdkerrors.MessageContain); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}

func collapseSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
