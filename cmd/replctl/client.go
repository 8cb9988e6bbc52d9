package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/credentials/local"
)

// defaultAddress is the daemon's default socket: its data dir defaults to
// .replicatord, relative to where it runs. REPLCTL_ADDRESS overrides it.
const defaultAddress = "unix://.replicatord/replicatord.sock"

// maxUnixPath is the room in sockaddr_un.sun_path, less the NUL.
const maxUnixPath = 107

// globalFlags are the flags every command shares.
type globalFlags struct {
	address  string
	timeout  time.Duration
	cacert   string
	cert     string
	key      string
	insecure bool
	token    string
	output   string
}

// target is a parsed --address.
type target struct {
	unix bool
	path string // unix: socket path as given
	host string // tcp: host:port
}

// parseAddress accepts unix:///abs/path.sock, unix://rel/path.sock,
// unix:path.sock and host:port.
func parseAddress(addr string) (target, error) {
	bad := func(why string) (target, error) {
		return target{}, fmt.Errorf("bad --address %q: %s; want unix:///abs/path.sock, unix://rel/path.sock or host:port", addr, why)
	}
	switch {
	case addr == "":
		return bad("empty")
	case strings.HasPrefix(addr, "unix://"), strings.HasPrefix(addr, "unix:"):
		p := strings.TrimPrefix(strings.TrimPrefix(addr, "unix:"), "//")
		if p == "" {
			return bad("no socket path")
		}
		return target{unix: true, path: p}, nil
	case strings.Contains(addr, "://"):
		return bad("unsupported scheme " + strconv.Quote(addr[:strings.Index(addr, "://")]))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return bad("not host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bad("port must be a number from 1 to 65535")
	}
	if host == "" {
		return bad("no host")
	}
	return target{host: addr}, nil
}

// grpcTarget returns the gRPC dial target. Relative socket paths are made
// absolute so the error messages show where replctl looked; when that is too
// long for a socket address the relative form is kept.
func (t target) grpcTarget() (string, error) {
	if !t.unix {
		return "dns:///" + t.host, nil
	}
	p := t.path
	if !filepath.IsAbs(p) {
		if abs, err := filepath.Abs(p); err == nil && len(abs) <= maxUnixPath {
			p = abs
		}
	}
	if len(p) > maxUnixPath {
		return "", fmt.Errorf("bad --address: socket path %q is %d bytes, longer than the %d a unix socket allows", p, len(p), maxUnixPath)
	}
	if filepath.IsAbs(p) {
		return "unix://" + p, nil
	}
	return "unix:" + p, nil
}

// dial is the one place replctl connects to the daemon. The connection is
// lazy (grpc.NewClient); errors reaching the daemon surface on the first
// call as UNAVAILABLE. Every error returned here is a usage error.
func dial(_ context.Context, g *globalFlags) (*grpc.ClientConn, error) {
	t, err := parseAddress(g.address)
	if err != nil {
		return nil, &usageError{err}
	}
	tgt, err := t.grpcTarget()
	if err != nil {
		return nil, &usageError{err}
	}
	creds, err := transportCredentials(t, g)
	if err != nil {
		return nil, &usageError{err}
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("replctl/" + version()),
	}
	if g.token != "" {
		if t.unix == false && g.insecure {
			return nil, usagef("--token is not sent over plaintext TCP (--insecure): use TLS or the unix socket")
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(g.token)))
	}
	conn, err := grpc.NewClient(tgt, opts...)
	if err != nil {
		return nil, usagef("bad --address %q: %v", g.address, err)
	}
	return conn, nil
}

// transportCredentials picks the transport security: the unix socket is
// protected by its file mode (local credentials, which also let a token be
// sent); TCP is TLS unless --insecure says otherwise, explicitly.
func transportCredentials(t target, g *globalFlags) (credentials.TransportCredentials, error) {
	tlsFlags := g.cacert != "" || g.cert != "" || g.key != ""
	if t.unix {
		if tlsFlags {
			return nil, fmt.Errorf("--cacert, --cert and --key apply to TCP addresses, not to the unix socket %q", t.path)
		}
		return local.NewCredentials(), nil
	}
	if g.insecure {
		if tlsFlags {
			return nil, fmt.Errorf("--insecure turns TLS off; it cannot be combined with --cacert, --cert or --key")
		}
		return insecure.NewCredentials(), nil
	}
	if (g.cert == "") != (g.key == "") {
		return nil, fmt.Errorf("--cert and --key must be given together")
	}
	host, _, _ := net.SplitHostPort(t.host)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if g.cacert != "" {
		pem, err := os.ReadFile(g.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate found", g.cacert)
		}
		cfg.RootCAs = pool
	}
	if g.cert != "" {
		pair, err := tls.LoadX509KeyPair(g.cert, g.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(cfg), nil
}

// bearerToken sends "authorization: Bearer <token>" on every call. It
// requires transport security so a token never crosses plaintext TCP.
type bearerToken string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return true }
