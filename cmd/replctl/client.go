package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/replicatord/replicatord/internal/input"
	"github.com/replicatord/replicatord/internal/transport"
)

// The default address, when neither --address nor REPLCTL_ADDRESS is set:
// the socket of a daemon started here with its default data dir
// (.replicatord) if there is one, else the socket of a system install
// (deploy/replicatord.service puts it in RuntimeDirectory=replicatord).
const (
	localSocket  = ".replicatord/replicatord.sock"
	systemSocket = "/run/replicatord/replicatord.sock"
)

// defaultAddress resolves the default address; stat is os.Stat.
func defaultAddress(stat func(string) (os.FileInfo, error)) string {
	if _, err := stat(localSocket); err == nil {
		return "unix://" + localSocket
	}
	return "unix://" + systemSocket
}

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
		return target{}, fmt.Errorf("bad --address %s: %s; want unix:///abs/path.sock, unix://rel/path.sock or host:port", input.Quote(addr), why)
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

// checkPath rejects a socket path too long for a unix socket address, which
// would otherwise fail later with an obscure "invalid argument". Relative
// paths are checked as the absolute path internal/transport dials.
func (t target) checkPath() error {
	if !t.unix {
		return nil
	}
	p := t.path
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if len(p) > maxUnixPath {
		return fmt.Errorf("bad --address: socket path %s is %d bytes, longer than the %d a unix socket allows", input.Quote(p), len(p), maxUnixPath)
	}
	return nil
}

// dial is the one place replctl connects to the daemon. replctl checks the
// address itself first (stricter than the daemon: ports, schemes, socket
// path length, with messages naming --address), then leaves transport
// security, the token and keepalive to internal/transport, which the daemon
// shares. The connection is lazy (grpc.NewClient); errors reaching the
// daemon surface on the first call as UNAVAILABLE. Every error returned
// here is a usage error.
func dial(_ context.Context, g *globalFlags) (*grpc.ClientConn, error) {
	t, err := parseAddress(g.address)
	if err != nil {
		return nil, &usageError{err}
	}
	if err := t.checkPath(); err != nil {
		return nil, &usageError{err}
	}
	conn, err := transport.Dial(transport.ClientConfig{
		Address:  g.address,
		CACert:   g.cacert,
		Cert:     g.cert,
		Key:      g.key,
		Insecure: g.insecure,
		Token:    g.token,
	}, grpc.WithUserAgent("replctl/"+version()))
	if err != nil {
		return nil, &usageError{err}
	}
	return conn, nil
}
