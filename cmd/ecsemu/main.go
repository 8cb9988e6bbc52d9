// Command ecsemu serves the ECS image API emulator (package
// internal/ecsemu) over HTTP, for replicatord's tests and demos and for any
// tool that talks to the ECS image API with an Alibaba Cloud SDK: point the
// SDK's endpoint at the printed address (plain HTTP).
//
// Knobs come from flags, from a YAML file (--config) with the same knobs,
// and for the credentials from the ALIBABA_CLOUD_ACCESS_KEY_ID /
// ALIBABA_CLOUD_ACCESS_KEY_SECRET environment variables; flags win over the
// environment, which wins over the file.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code (0 ok, 1
// runtime failure, 2 bad usage) and stops serving when ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ecsemu: %v\n", err)
		return 2
	}
	emu, err := ecsemu.New(opts.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ecsemu: %v\n", err)
		return 2
	}
	defer emu.Close()

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		fmt.Fprintf(stderr, "ecsemu: %v\n", err)
		return 1
	}
	srv := &http.Server{
		Handler:           emu,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
	scheme := "http"
	if opts.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.tlsCert, opts.tlsKey)
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "ecsemu: TLS: %v\n", err)
			return 2
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "ecsemu listening on %s://%s\n", scheme, ln.Addr())
	fmt.Fprintf(stderr, "ecsemu: %s\n", opts.summary())

	select {
	case err := <-served:
		fmt.Fprintf(stderr, "ecsemu: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	// Release hung requests first, or Shutdown would wait for them.
	emu.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	<-served
	fmt.Fprintln(stderr, "ecsemu: stopped")
	return 0
}
