package transport

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Defaults applied to zero fields of ServerConfig.
const (
	// DefaultMaxRecvMsgSize is gRPC's own default, made explicit.
	DefaultMaxRecvMsgSize = 4 << 20
	// DefaultMaxConcurrentStreams bounds streams per HTTP/2 connection.
	// Watchers are streams, and one client may hold a thousand of them on
	// one connection with room left for unary calls.
	DefaultMaxConcurrentStreams = 2048
	// DefaultSlowCall is the duration above which a unary call is logged
	// as slow even when it succeeds.
	DefaultSlowCall = time.Second
)

// ServerConfig describes one gRPC endpoint of the daemon.
type ServerConfig struct {
	// Address: "" (DefaultSocket), "unix:///path" or "/path.sock" for a
	// unix socket; "host:port" for TCP.
	Address string
	// TLSCert and TLSKey are PEM files. TCP requires them unless Insecure.
	TLSCert, TLSKey string
	// ClientCA, a PEM bundle, turns on mutual TLS: every client must
	// present a certificate it signed.
	ClientCA string
	// Insecure allows TCP without TLS. Warnings reports it for the caller
	// to log loudly.
	Insecure bool
	// TokenFile holds bearer tokens, one a line, # comments. When set,
	// every call but health checks needs one.
	TokenFile string
	// Reflection overrides the default: on for a unix socket, off for TCP.
	Reflection *bool
	// MaxRecvMsgSize in bytes; DefaultMaxRecvMsgSize when zero.
	MaxRecvMsgSize int
	// MaxConcurrentStreams per connection; DefaultMaxConcurrentStreams
	// when zero.
	MaxConcurrentStreams uint32
	// SlowCall is the threshold for logging slow unary calls;
	// DefaultSlowCall when zero.
	SlowCall time.Duration
	// ReloadInterval is how often, at most, the certificate, key, client
	// CA and token files are checked for new contents (by hash, when a
	// handshake or an authenticated call needs them);
	// DefaultReloadInterval when zero.
	ReloadInterval time.Duration
	// OnReload, when set, is called after each attempt to load changed
	// files: kind is ReloadTLS or ReloadTokens, err nil on success. A
	// failed reload keeps the previous material. It must be quick.
	OnReload func(kind string, err error)
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.MaxRecvMsgSize == 0 {
		c.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.SlowCall == 0 {
		c.SlowCall = DefaultSlowCall
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	return c
}

// Endpoint parses the address.
func (c ServerConfig) Endpoint() (Endpoint, error) { return ParseAddress(c.Address) }

// TLS reports whether the endpoint serves TLS.
func (c ServerConfig) TLS() bool { return c.TLSCert != "" || c.TLSKey != "" }

// ReflectionEnabled says whether the caller should register the gRPC
// reflection service on this endpoint: on for the local socket, where it
// helps grpcurl; off for TCP unless asked, since it maps the API for anyone
// who can connect.
func (c ServerConfig) ReflectionEnabled() bool {
	if c.Reflection != nil {
		return *c.Reflection
	}
	ep, err := c.Endpoint()
	return err == nil && ep.IsUnix()
}

// Validate checks the combination of settings without touching files.
func (c ServerConfig) Validate() error {
	ep, err := c.Endpoint()
	if err != nil {
		return err
	}
	if c.MaxRecvMsgSize < 0 {
		return fmt.Errorf("max receive message size %d must not be negative", c.MaxRecvMsgSize)
	}
	if c.SlowCall < 0 {
		return fmt.Errorf("slow call threshold %v must not be negative", c.SlowCall)
	}
	if c.ReloadInterval < 0 {
		return fmt.Errorf("reload interval %v must not be negative", c.ReloadInterval)
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		return errors.New("tls: a server certificate (--tls-cert) needs its key (--tls-key)")
	case c.TLSKey != "" && c.TLSCert == "":
		return errors.New("tls: a server key (--tls-key) needs its certificate (--tls-cert)")
	case c.ClientCA != "" && !c.TLS():
		return errors.New("tls: client certificate verification (--tls-client-ca) needs a server certificate (--tls-cert/--tls-key)")
	case c.Insecure && c.TLS():
		return errors.New("--insecure and --tls-cert/--tls-key contradict each other: choose one")
	}
	if ep.Network == "tcp" && !c.TLS() {
		if !c.Insecure {
			return fmt.Errorf("TCP listen on %s needs TLS (--tls-cert/--tls-key) or --insecure", ep.Address)
		}
		if c.TokenFile != "" {
			return fmt.Errorf("bearer tokens (--token-file) on plaintext TCP %s would cross the network in clear text: configure TLS (--tls-cert/--tls-key) or use the unix socket", ep.Address)
		}
	}
	return nil
}

// Warnings lists what the operator must be told loudly about this
// configuration: plaintext TCP, a token file others can read. The caller
// logs them at WARN (ServerOptions does so with its logger).
func (c ServerConfig) Warnings() []string {
	var w []string
	if ep, err := c.Endpoint(); err == nil && ep.Network == "tcp" && c.Insecure && !c.TLS() {
		w = append(w, fmt.Sprintf("INSECURE: serving gRPC on %s without TLS (--insecure): anyone on the network can read and forge every call", ep.Address))
	}
	if c.TokenFile != "" {
		if fi, err := os.Stat(c.TokenFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			w = append(w, fmt.Sprintf("token file %s is readable by other users (mode %04o): chmod 600 it", c.TokenFile, fi.Mode().Perm()))
		}
	}
	return w
}
