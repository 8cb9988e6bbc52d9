package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/errgrpc"
)

// Exit codes. 0-9 belong to replctl itself; an RPC that fails with gRPC code
// C exits with 10+C, so scripts can tell "not found" from "daemon down"
// without parsing messages. exitCodeHelp renders the table for --help.
const (
	exitOK          = 0
	exitFailure     = 1 // a job failed, reload rejected, or a local error
	exitUsage       = 2 // bad flags or arguments; nothing was sent
	exitCancelled   = 3 // copy: no job failed but some were cancelled
	exitRPCBase     = 10
	exitInterrupted = 130 // Ctrl-C / SIGTERM while waiting (watch exits 0)
)

// exitCodeHelp is the exit-code table shown in the root command's help.
func exitCodeHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	fmt.Fprintf(&b, "  %3d  success (copy: every job SUCCEEDED; watch: interrupted with Ctrl-C)\n", exitOK)
	fmt.Fprintf(&b, "  %3d  failure: a job FAILED (copy), the policy file was rejected (reload), or a local error\n", exitFailure)
	fmt.Fprintf(&b, "  %3d  usage error: unknown command or flag, bad flag value, bad address; nothing was sent\n", exitUsage)
	fmt.Fprintf(&b, "  %3d  copy: no job failed but at least one was CANCELLED\n", exitCancelled)
	fmt.Fprintf(&b, "  %3d  interrupted (Ctrl-C) while waiting; copies go on in the daemon\n", exitInterrupted)
	b.WriteString("  10+N the daemon answered with gRPC status code N:\n")
	for _, c := range []codes.Code{
		codes.Canceled, codes.Unknown, codes.InvalidArgument, codes.DeadlineExceeded, codes.NotFound,
		codes.AlreadyExists, codes.PermissionDenied, codes.ResourceExhausted, codes.FailedPrecondition,
		codes.Aborted, codes.OutOfRange, codes.Unimplemented, codes.Internal, codes.Unavailable,
		codes.DataLoss, codes.Unauthenticated,
	} {
		fmt.Fprintf(&b, "  %3d  %s%s\n", exitRPCBase+int(c), c, codeHint[c])
	}
	return b.String()
}

var codeHint = map[codes.Code]string{
	codes.InvalidArgument:    " (the message names the field)",
	codes.DeadlineExceeded:   " (no answer within --timeout)",
	codes.NotFound:           " (unknown job or policy id)",
	codes.FailedPrecondition: " (e.g. cancelling a finished job)",
	codes.Unavailable:        " (daemon not reachable at --address, or the daemon cannot reach ECS: the message says which)",
	codes.Unauthenticated:    " (missing or wrong --token)",
}

// usageError marks an error in the command line: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitError carries an explicit exit code; msg is printed unless empty
// (the command already said what happened).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// runError marks an error returned by a command's RunE, as opposed to one
// cobra raised while parsing the command line (which is a usage error).
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// exitCode classifies err and returns the exit code and the message to
// print ("" for none). interrupted tells whether the user asked us to stop.
func exitCode(err error, interrupted bool) (int, string) {
	if err == nil {
		return exitOK, ""
	}
	var re *runError
	if !errors.As(err, &re) {
		return exitUsage, err.Error()
	}
	err = re.err
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code, ee.msg
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage, ue.Error()
	}
	// One conversion: a status becomes its errdefs class with the server's
	// message, by the mapping the daemon used to make it.
	err = errgrpc.ToNative(err)
	if interrupted && errors.Is(err, context.Canceled) {
		return exitInterrupted, "interrupted"
	}
	if errgrpc.IsStatus(err) {
		code := errgrpc.Code(err)
		msg := clean(err.Error())
		if msg == "" {
			msg = code.String()
		}
		switch {
		case errors.Is(err, errdefs.ErrUnavailable):
			msg = "cannot reach replicatord: " + msg + " (is the daemon running? set --address or REPLCTL_ADDRESS)"
		case errors.Is(err, errdefs.ErrUnauthenticated):
			msg += " (set --token or REPLCTL_TOKEN)"
		case errors.Is(err, context.DeadlineExceeded):
			msg += " (no answer within --timeout)"
		}
		return exitRPCBase + int(code), msg
	}
	return exitFailure, err.Error()
}
