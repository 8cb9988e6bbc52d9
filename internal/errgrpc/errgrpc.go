// Package errgrpc is the one mapping between internal/errdefs classes and
// gRPC status codes, after containerd's pkg/errgrpc. It is kept apart from
// errdefs so that only the API's two ends import gRPC: the daemon's error
// interceptors (internal/transport) call ToGRPC on every handler's error,
// once, and replctl calls ToNative on what a call returns before it looks
// at the class. Handlers and everything below them return errdefs errors.
package errgrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// table is the mapping, both ways. context's errors are classes too: a
// handler that returns ctx.Err() answers CANCELED or DEADLINE_EXCEEDED.
var table = []struct {
	class error
	code  codes.Code
}{
	{errdefs.ErrInvalidArgument, codes.InvalidArgument},
	{errdefs.ErrNotFound, codes.NotFound},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{errdefs.ErrFailedPrecondition, codes.FailedPrecondition},
	{errdefs.ErrOutOfRange, codes.OutOfRange},
	{errdefs.ErrUnavailable, codes.Unavailable},
	{errdefs.ErrResourceExhausted, codes.ResourceExhausted},
	{errdefs.ErrPermissionDenied, codes.PermissionDenied},
	{errdefs.ErrUnauthenticated, codes.Unauthenticated},
	{errdefs.ErrAborted, codes.Aborted},
	{errdefs.ErrDataLoss, codes.DataLoss},
	{errdefs.ErrUnimplemented, codes.Unimplemented},
	{errdefs.ErrInternal, codes.Internal},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// Code returns err's gRPC code: OK for nil, the code of a status error (or
// of one it wraps), else the code of its class, codes.Unknown when it has
// none.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return s.Code()
	}
	for _, t := range table {
		if errors.Is(err, t.class) {
			return t.code
		}
	}
	return codes.Unknown
}

// ToGRPC converts err into a gRPC status error with the code of its class.
// The message is err's message, which must already be fit for users: no
// secrets, names the field or object at fault. A status error is returned
// as it is.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}

// ToNative converts a gRPC status error, as a call returns it, into an
// error whose message is the status's (the server's words, without grpc's
// "rpc error: code = ... desc =" prefix) and whose class is the one of its
// code (none for Unknown). The result still carries the status, so Code,
// IsStatus, status.Code and status.FromError see it. Errors that are not
// status errors (io.EOF at the end of a stream, a local error) are returned
// unchanged.
func ToNative(err error) error {
	s, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	var ne *nativeError
	if errors.As(err, &ne) {
		return err
	}
	out := &nativeError{st: s}
	for _, t := range table {
		if t.code == s.Code() {
			out.class = t.class
			break
		}
	}
	return out
}

// IsStatus reports whether err is what a gRPC call answered: a status error
// (from the server, or from the client's own transport: unreachable,
// deadline), or one ToNative converted.
func IsStatus(err error) bool {
	_, ok := status.FromError(err)
	return err != nil && ok
}

type nativeError struct {
	class error // nil for a code with no class
	st    *status.Status
}

func (e *nativeError) Error() string              { return e.st.Message() }
func (e *nativeError) Unwrap() error              { return e.class }
func (e *nativeError) GRPCStatus() *status.Status { return e.st }
