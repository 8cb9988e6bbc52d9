// Package errdefs is replicatord's one error taxonomy.
//
// Every package wraps one of these sentinels (fmt.Errorf("...: %w", ErrX))
// and returns the result up the stack unchanged in class. The classes mirror
// gRPC codes, as containerd's errdefs do, because that is where most of them
// end up; but this package knows nothing of gRPC, so the store, the
// scheduler and the cloud adapter build without it. internal/errgrpc holds
// the one mapping between these classes and gRPC codes: the daemon's
// interceptors (internal/transport) convert a handler's error once, on its
// way out, and replctl converts a status back with errgrpc.ToNative before
// it chooses its exit code.
package errdefs

import (
	"errors"
	"fmt"
)

var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrOutOfRange         = errors.New("out of range")
	ErrUnavailable        = errors.New("unavailable")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrAborted            = errors.New("aborted")
	ErrDataLoss           = errors.New("data loss")
	ErrUnimplemented      = errors.New("unimplemented")
	ErrInternal           = errors.New("internal")
)

// Invalid returns an ErrInvalidArgument naming the field at fault.
func Invalid(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }
func (e *fieldError) Unwrap() error { return ErrInvalidArgument }

// Field returns the field named by an error from Invalid, or "". Tests use
// it to assert that a refusal names the field at fault.
func Field(err error) string {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.field
	}
	return ""
}

// New returns an error of class whose message is exactly msg, for messages
// that must not carry the class's own text (": unauthenticated" after a
// sentence that already says so).
func New(class error, msg string) error { return &classError{class: class, msg: msg} }

type classError struct {
	class error
	msg   string
}

func (e *classError) Error() string { return e.msg }
func (e *classError) Unwrap() error { return e.class }
