package transport

import (
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// Keepalive settings, after etcd: clients may ping every 5 s at most (even
// without active streams, since an idle replctl watch is still a client),
// and the server pings a connection idle for KeepaliveTime, closing it when
// the ack does not arrive within KeepaliveTimeout. Two minutes keeps idle
// watch connections alive through load balancers and NATs that drop quiet
// flows.
const (
	KeepaliveMinTime = 5 * time.Second
	KeepaliveTime    = 2 * time.Minute
	KeepaliveTimeout = 20 * time.Second
)

// ServerOptions returns the grpc.ServerOptions for cfg: TLS credentials,
// limits, keepalive, and the interceptor chains
//
//	log (failed or slow calls) → errors (errdefs → gRPC status, once)
//	  → recover (panic → Internal) → auth (bearer token)
//
// for unary and streaming calls alike, so handlers return errdefs errors and
// never build a status themselves. Callers add their own interceptors
// by appending grpc.ChainUnaryInterceptor / grpc.ChainStreamInterceptor
// options: chains accumulate, and later ones run inside these, i.e. only
// for authenticated calls. cfg.Warnings are logged at WARN on logger.
func ServerOptions(cfg ServerConfig, logger *slog.Logger) ([]grpc.ServerOption, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             KeepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    KeepaliveTime,
			Timeout: KeepaliveTimeout,
		}),
	}
	rs := cfg.reloadSettings(logger)
	if cfg.TLS() {
		tc, err := serverTLSConfig(cfg, rs)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	unary := []grpc.UnaryServerInterceptor{unaryLog(logger, cfg.SlowCall), unaryErrors, unaryRecover(logger)}
	stream := []grpc.StreamServerInterceptor{streamLog(logger), streamErrors, streamRecover(logger)}
	if cfg.TokenFile != "" {
		tokens, err := tokenSource(cfg, rs)
		if err != nil {
			return nil, err
		}
		unary = append(unary, unaryAuth(tokens))
		stream = append(stream, streamAuth(tokens))
	}
	opts = append(opts, grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	return opts, nil
}
