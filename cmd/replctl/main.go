// Command replctl is the command-line client of replicatord.
//
// It is deliberately thin, in the style of etcdctl and ctr: every command is a
// cobra command in its own file (<noun>_command.go) that builds one request,
// calls the daemon over gRPC (client.go holds the one dial function) and
// prints the answer. Everything users see is produced by pure functions of
// their input (tables in table.go, the live view in liveview.go, plain lines
// in plain.go), so it is pinned by golden tests. The streaming side is
// separate: follow.go receives Copy/Watch streams (resuming a watch after a
// lost connection), tracker.go keeps the latest version of each job, when it
// arrived and its ETA estimator (eta.go), progress.go carries the daemon's
// progress estimate on between events so bars and ETAs move every second,
// sink.go picks live view, plain lines or protojson,
// and screen.go redraws the live view in place with a few ANSI sequences.
//
// Errors leave replctl as "replctl: <message>" on stderr and an exit code
// derived from the gRPC status code (see exitcode.go and `replctl --help`).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc/grpclog"
)

func main() {
	// grpc-go logs to stderr by default; a CLI must not mix that into its
	// output. Errors reach the user through the RPC status instead.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		now:    time.Now,
		term:   func() termInfo { return stdoutTerm(os.Stdout) },
	})
	stop()
	os.Exit(code)
}

// env is everything replctl takes from its process, injected so that tests
// run commands in-process with buffers, a fixed clock and a fake terminal.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	term           func() termInfo
}

// termInfo describes stdout: whether it is a terminal and its size.
type termInfo struct {
	tty           bool
	width, height int
}
