package ecsemu

import (
	"fmt"
	"net/http"
	"time"
)

// apiError is an ECS error answer: HTTP status, Code and Message.
type apiError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when set, is sent as x-acs-retry-after (ms).
	RetryAfter time.Duration
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func newErr(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Constructors for the errors that recur across actions. Messages follow
// the ECS wording where the reference quotes it.
func errMissing(param string) *apiError {
	return newErr(http.StatusBadRequest, "MissingParameter", "The input parameter %q that is mandatory for processing this request is not supplied.", param)
}

func errInvalid(param, format string, args ...any) *apiError {
	return newErr(http.StatusBadRequest, "InvalidParameter", "The specified parameter %q is not valid: %s", param, fmt.Sprintf(format, args...))
}

func errRegionNotFound() *apiError {
	return newErr(http.StatusNotFound, "InvalidRegionId.NotFound", "The specified RegionId does not exist.")
}

func errImageNotFound(id string) *apiError {
	return newErr(http.StatusNotFound, "InvalidImageId.NotFound", "The specified image %s does not exist.", id)
}

var (
	errInternal    = newErr(http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error, exception or failure.")
	errUnavailable = newErr(http.StatusServiceUnavailable, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.")
)

// errorBody is the JSON of every error answer. All fields are strings: the
// SDK reads them with unchecked type assertions.
type errorBody struct {
	RequestId string
	HostId    string
	Code      string
	Message   string
	Recommend string
}
