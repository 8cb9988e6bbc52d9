// Package errdefs is replicatord's one error taxonomy.
//
// Every package wraps one of these sentinels (fmt.Errorf("...: %w", ErrX))
// and the gRPC edge converts them once, with ToGRPC; replctl converts back
// with FromGRPC and derives its exit code from the class. Nothing else in the
// tree looks at gRPC codes. The classes mirror gRPC codes, as containerd's
// errdefs do, because that is where they end up.
package errdefs

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

var table = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrOutOfRange, codes.OutOfRange},
	{ErrUnavailable, codes.Unavailable},
	{ErrResourceExhausted, codes.ResourceExhausted},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrAborted, codes.Aborted},
	{ErrDataLoss, codes.DataLoss},
	{ErrUnimplemented, codes.Unimplemented},
	{ErrInternal, codes.Internal},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// Code returns the gRPC code of err's class, codes.Unknown when it has none.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return s.Code()
	}
	for _, t := range table {
		if errors.Is(err, t.err) {
			return t.code
		}
	}
	return codes.Unknown
}

// ToGRPC converts err into a gRPC status error with the code of its class.
// The message is err's message, which must already be fit for users: no
// secrets, names the field or object at fault.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}

// FromGRPC converts a gRPC status error back into the class sentinel, keeping
// the server's message.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, t := range table {
		if t.code == s.Code() {
			return &remoteError{class: t.err, msg: s.Message()}
		}
	}
	return err
}

type remoteError struct {
	class error
	msg   string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.class }

// Invalid returns an ErrInvalidArgument naming the field at fault.
func Invalid(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }
func (e *fieldError) Unwrap() error { return ErrInvalidArgument }

// Field returns the field named by an error from Invalid, or "".
func Field(err error) string {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.field
	}
	return ""
}
