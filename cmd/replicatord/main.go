// Command replicatord is the replication daemon: it loads policies from a
// YAML file, keeps per-image copy state in bbolt, runs the copy scheduler
// and serves the replicator.v1 gRPC API.
//
//	replicatord --config policies.yaml [--data-dir DIR] [--listen ADDR]
//	replicatord --check-state DIR/state.db     # offline consistency check
//	replicatord --compact-state DIR/state.db   # offline: shrink the file
//
// With `cloud: {provider: simulated}` it starts the ECS emulator in-process
// and talks to it over HTTP through the same SDK adapter it uses for the
// real cloud.
//
// Start-up (daemon.go, cloud.go): the whole configuration is checked first
// (flags, the file, and the file's regions if the cloud answers now), every
// problem reported at once with exit 2, before the data dir, state.db or
// the socket exist. A cloud that does not answer (credentials, network,
// ECS) does not stop the daemon: it serves NOT_SERVING with the reason and
// refuses region-dependent requests with UNAVAILABLE until the cloud
// answers (cloud.go). Before anything, main makes the process non-dumpable
// and, if DEBUG=sdk is set, starts itself again without it (the SDK reads it
// during package initialisation and would print every request's AccessKeyId).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/replicatord/replicatord/internal/cloud/aliyun"
)

// Exit codes. Only configuration errors (flags, the config file, regions
// the cloud does not know) exit 2: restarting will not fix them. Anything
// transient (the cloud, credentials, the network) never stops the daemon.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// sdkDebugStripped is set by the environment variable a re-executed daemon
// gets after DEBUG=sdk was removed, so that the warning reaches its log.
var sdkDebugStripped = os.Getenv(strippedMarker) != ""

const strippedMarker = "REPLICATORD_SDK_DEBUG_STRIPPED"

func main() {
	// The SDK prints every request with its AccessKeyId when DEBUG=sdk;
	// it read the variable already (package initialisation), so the daemon
	// starts again without it.
	if env, stripped := aliyun.StripSDKDebug(os.Environ()); stripped {
		fmt.Fprintf(os.Stderr, "replicatord: removing DEBUG=sdk from the environment (the SDK would print credentials) and restarting\n")
		err := reexec(append(env, strippedMarker+"=1"))
		fmt.Fprintf(os.Stderr, "replicatord: DEBUG=sdk is set: %v\n", err)
		os.Exit(exitUsage)
	}
	os.Unsetenv(strippedMarker)
	if err := noCoreDumps(); err != nil {
		fmt.Fprintf(os.Stderr, "replicatord: cannot turn core dumps off: %v\n", err)
		os.Exit(exitFailed)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err == nil && fl.version {
		fmt.Fprintf(stdout, "replicatord %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "replicatord: %v\n", err)
		return exitUsage
	}
	if fl.checkState != "" {
		return checkState(fl.checkState, stdout, stderr)
	}
	if fl.compactState != "" {
		return compactState(fl.compactState, stdout, stderr)
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
			if errors.Is(err, errSessionLost) {
				// At once, without the graceful stop: this process may no
				// longer lead, and every write it tries is refused anyway
				// (ha.go). The supervisor starts a fresh candidate.
				d.log.Error("exiting", "err", err.Error())
				fmt.Fprintf(stderr, "replicatord: %v\n", err)
				return exitFailed
			}
			d.shutdown()
			var ue *usageError
			if errors.As(err, &ue) {
				// A config error found late (an unknown region, once the
				// cloud answered): permanent, as at start.
				d.log.Error("config error; exiting", "err", err.Error())
				fmt.Fprintf(stderr, "replicatord: %v\n", err)
				return exitUsage
			}
			d.log.Error("daemon failed", "err", err.Error())
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
