// Command replicatord is the replication daemon: it loads policies from a
// YAML file, keeps per-image copy state in bbolt, runs the copy scheduler
// and serves the replicator.v1 gRPC API.
//
//	replicatord --config policies.yaml [--data-dir DIR] [--listen ADDR]
//
// With `cloud: {provider: simulated}` it starts the ECS emulator in-process
// and talks to it over HTTP through the same SDK adapter it uses for the
// real cloud.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "replicatord: %v\n", err)
		return exitUsage
	}
	if fl.checkState != "" {
		return checkState(fl.checkState, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := start(ctx, fl, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "replicatord: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitFailed
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			d.reload(ctx)
		case err := <-d.failed:
			d.log.Error("daemon failed", "err", err.Error())
			d.shutdown()
			return exitFailed
		case <-ctx.Done():
			d.log.Info("shutting down")
			d.shutdown()
			return exitOK
		}
	}
}

// usageError is a problem with flags or the config file: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
