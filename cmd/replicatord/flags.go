package main

import (
	"flag"
	"fmt"
	"io"
	"time"
)

type flags struct {
	config        string
	dataDir       string
	listen        string
	metricsListen string
	tlsCert       string
	tlsKey        string
	tlsClientCA   string
	insecure      bool
	tokenFile     string
	reflection    string
	logFormat     string
	logLevel      string
	shutdownGrace time.Duration
	checkState    string
	version       bool
	compactState  string
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("replicatord", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "policy and daemon config file (YAML, see policies.example.yaml); required")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory of state.db and the unix socket (overrides daemon.data_dir)")
	fs.StringVar(&f.listen, "listen", "", "gRPC address: unix:///path.sock, or host:port for TCP (needs --tls-cert/--tls-key or --insecure); default unix socket in the data dir (overrides daemon.listen)")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus metrics on this host:port at /metrics (overrides daemon.metrics_listen)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "server certificate (PEM) for TCP")
	fs.StringVar(&f.tlsKey, "tls-key", "", "server private key (PEM) for TCP")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "require client certificates signed by this CA (PEM): mutual TLS")
	fs.BoolVar(&f.insecure, "insecure", false, "allow TCP WITHOUT TLS: anyone on the network can read and drive the API")
	fs.StringVar(&f.tokenFile, "token-file", "", "file of bearer tokens (one a line); every call but health checks must carry one")
	fs.StringVar(&f.reflection, "reflection", "", "gRPC server reflection: true or false (default: on for the unix socket, off for TCP)")
	fs.StringVar(&f.logFormat, "log-format", "", "log format: text or json (overrides daemon.log_format)")
	fs.StringVar(&f.logLevel, "log-level", "", "log level: debug, info, warn, error (overrides daemon.log_level)")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", 10*time.Second, "how long a graceful stop may take before streams are cut")
	fs.StringVar(&f.checkState, "check-state", "", "check the consistency of a state file (bbolt) and exit")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.StringVar(&f.compactState, "compact-state", "", "shrink a state file to its live size (stop the daemon first; checked before and after, replaced atomically) and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: replicatord --config FILE [flags]\n\nreplicatord replicates ECS custom images across regions.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	if f.version {
		return f, nil
	}
	if f.checkState != "" && f.compactState != "" {
		return nil, fmt.Errorf("--check-state and --compact-state are separate steps: run one at a time")
	}
	if f.checkState == "" && f.compactState == "" && f.config == "" {
		return nil, fmt.Errorf("--config is required (try: replicatord --config policies.example.yaml)")
	}
	switch f.reflection {
	case "", "true", "false":
	default:
		return nil, fmt.Errorf("--reflection must be true or false, got %q", f.reflection)
	}
	if f.shutdownGrace <= 0 {
		return nil, fmt.Errorf("--shutdown-grace must be positive, got %s", f.shutdownGrace)
	}
	return f, nil
}
