package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/credentials/local"
	"google.golang.org/grpc/keepalive"
)

// ClientConfig is how replctl (or any Go client) reaches the daemon.
type ClientConfig struct {
	// Address as in ServerConfig; "" is DefaultSocket.
	Address string
	// CACert verifies the server (system roots when empty); Cert and Key
	// are the client certificate for mTLS. Setting any of them, or
	// ServerName, selects TLS, on a unix socket too.
	CACert, Cert, Key string
	// Insecure talks plaintext to a TCP address. A Token is then refused:
	// it would cross the network in clear text.
	Insecure bool
	// Token is sent as "authorization: Bearer <token>" on every call.
	Token string
	// ServerName overrides the name expected in the server certificate.
	ServerName string
}

// Client keepalive: ping after 30 s without traffic so a dead daemon is
// noticed while a watch waits; well above the server's 5 s floor.
const (
	ClientKeepaliveTime    = 30 * time.Second
	ClientKeepaliveTimeout = 10 * time.Second
)

// Dial creates a client connection with grpc.NewClient; like it, it does not
// connect until the first call. Files are read now, so a bad --cacert or
// --cert fails here with a clear error rather than at the first RPC.
//
// On a unix socket the connection uses grpc's local credentials (or TLS
// when CACert/Cert is given), which grpc counts as secure, so a token may
// be sent. On TCP it uses TLS unless Insecure; with Insecure a token is
// refused.
func Dial(cfg ClientConfig, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	ep, err := ParseAddress(cfg.Address)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(cfg.Token, " \t\r\n") {
		return nil, errors.New("token must not contain whitespace")
	}
	wantTLS := cfg.CACert != "" || cfg.Cert != "" || cfg.Key != "" || cfg.ServerName != ""
	var creds credentials.TransportCredentials
	switch {
	case cfg.Insecure && wantTLS:
		return nil, errors.New("--insecure contradicts the TLS flags (--cacert/--cert/--key): choose one")
	case wantTLS || (!ep.IsUnix() && !cfg.Insecure):
		tc, err := ClientTLSConfig(cfg)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tc)
	case ep.IsUnix():
		creds = local.NewCredentials()
	default:
		if cfg.Token != "" {
			return nil, fmt.Errorf("refusing to send the bearer token over plaintext TCP to %s (--insecure): use TLS (--cacert) or the unix socket", ep.Address)
		}
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    ClientKeepaliveTime,
			Timeout: ClientKeepaliveTimeout,
		}),
	}
	if cfg.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(cfg.Token)))
	}
	cc, err := grpc.NewClient(ep.String(), append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", ep, err)
	}
	return cc, nil
}

// bearer is the token as PerRPCCredentials. It requires transport security,
// so grpc refuses to attach it to a connection below PrivacyAndIntegrity
// (unlike etcd's token credentials).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// String never shows the token.
func (bearer) String() string { return "bearer(redacted)" }

// GoString never shows the token either.
func (bearer) GoString() string { return "bearer(redacted)" }

// String shows the settings with the token redacted, so a ClientConfig
// may be logged or put in an error.
func (c ClientConfig) String() string {
	tok := ""
	if c.Token != "" {
		tok = "(redacted)"
	}
	return fmt.Sprintf("{Address:%s CACert:%s Cert:%s Key:%s Insecure:%v Token:%s ServerName:%s}",
		c.Address, c.CACert, c.Cert, c.Key, c.Insecure, tok, c.ServerName)
}

// GoString is String, for %#v.
func (c ClientConfig) GoString() string { return "transport.ClientConfig" + c.String() }
