package transport

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// DefaultSocket is the unix socket used when an address is empty.
const DefaultSocket = "/run/replicatord/replicatord.sock"

// Endpoint is a parsed address: a unix socket path or a TCP host:port.
type Endpoint struct {
	// Network is "unix" or "tcp".
	Network string
	// Address is an absolute socket path for unix, host:port for tcp.
	Address string
}

// IsUnix reports whether the endpoint is a unix socket.
func (e Endpoint) IsUnix() bool { return e.Network == "unix" }

// String returns the address in the form grpc.NewClient accepts.
func (e Endpoint) String() string {
	if e.IsUnix() {
		return "unix://" + e.Address
	}
	return e.Address
}

// ParseAddress understands "" (DefaultSocket), "unix:///abs/path",
// "unix:rel/path", a path ("/x.sock", "./x.sock", "x.sock") and
// "host:port". Relative socket paths are made absolute, so the result does
// not depend on where a later chdir leaves the process.
func ParseAddress(addr string) (Endpoint, error) {
	addr = strings.TrimSpace(addr)
	var path string
	switch {
	case addr == "":
		path = DefaultSocket
	case strings.HasPrefix(addr, "unix://"):
		path = strings.TrimPrefix(addr, "unix://")
	case strings.HasPrefix(addr, "unix:"):
		path = strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "/"), strings.HasPrefix(addr, "./"),
		strings.HasPrefix(addr, "../"), strings.HasSuffix(addr, ".sock"):
		path = addr
	default:
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return Endpoint{}, fmt.Errorf("address %q is neither a unix socket path (unix:///path or /path.sock) nor host:port: %v", addr, err)
		}
		if port == "" {
			return Endpoint{}, fmt.Errorf("address %q has no port", addr)
		}
		return Endpoint{Network: "tcp", Address: net.JoinHostPort(host, port)}, nil
	}
	if path == "" {
		return Endpoint{}, fmt.Errorf("address %q names no socket path", addr)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Endpoint{}, fmt.Errorf("socket path %q: %v", path, err)
	}
	return Endpoint{Network: "unix", Address: abs}, nil
}
