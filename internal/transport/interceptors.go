package transport

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/errgrpc"
)

// healthPrefix is the service reachable without a token.
const healthPrefix = "/grpc.health.v1.Health/"

// authExempt reports whether method may be called without a token.
func authExempt(method string) bool { return strings.HasPrefix(method, healthPrefix) }

// authorize checks the bearer token in ctx's incoming metadata. The
// messages name what is wrong with the header, never its content.
func authorize(ctx context.Context, tokens func() *Tokens) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return errdefs.New(errdefs.ErrUnauthenticated, "missing bearer token: send metadata \"authorization: Bearer <token>\"")
	}
	if len(vals) > 1 {
		return errdefs.New(errdefs.ErrUnauthenticated, "more than one authorization header")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errdefs.New(errdefs.ErrUnauthenticated, "authorization metadata must be \"Bearer <token>\"")
	}
	if !tokens().Valid(strings.TrimSpace(token)) {
		return errdefs.New(errdefs.ErrUnauthenticated, "invalid bearer token")
	}
	return nil
}

// unaryErrors and streamErrors are where the API's errors become gRPC
// statuses, once: handlers, auth and recover return errdefs errors, and
// errgrpc.ToGRPC gives each the code of its class and keeps its message.
func unaryErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, errgrpc.ToGRPC(err)
}

func streamErrors(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return errgrpc.ToGRPC(handler(srv, ss))
}

func unaryAuth(tokens func() *Tokens) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !authExempt(info.FullMethod) {
			if err := authorize(ctx, tokens); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}

func streamAuth(tokens func() *Tokens) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !authExempt(info.FullMethod) {
			if err := authorize(ss.Context(), tokens); err != nil {
				return err
			}
		}
		return handler(srv, ss)
	}
}

// panicError logs a recovered panic with its stack and returns what the
// caller sees: a bare Internal, since the panic value may hold anything.
func panicError(logger *slog.Logger, method string, p any) error {
	logger.Error("panic in gRPC handler", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return errdefs.New(errdefs.ErrInternal, "internal error (the daemon log has details)")
}

func unaryRecover(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				resp, err = nil, panicError(logger, info.FullMethod, p)
			}
		}()
		return handler(ctx, req)
	}
}

func streamRecover(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = panicError(logger, info.FullMethod, p)
			}
		}()
		return handler(srv, ss)
	}
}

// callLevel is how loudly a finished call is logged; ok=false means not at
// all. Server faults are errors; refused callers are warnings, since they
// may be probing; ordinary client mistakes are info; successes only when
// slow.
func callLevel(code codes.Code, d, slow time.Duration, unary bool) (slog.Level, bool) {
	switch code {
	case codes.OK:
		if unary && d >= slow {
			return slog.LevelWarn, true
		}
		return 0, false
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return slog.LevelError, true
	case codes.Unauthenticated, codes.PermissionDenied, codes.Unavailable, codes.ResourceExhausted:
		return slog.LevelWarn, true
	case codes.Canceled:
		// Watchers end this way whenever a client goes away.
		return slog.LevelDebug, true
	default:
		return slog.LevelInfo, true
	}
}

// logCall writes one line for a failed or slow call. Only the method, the
// status and the peer address are logged: metadata, which carries the
// token, never is.
func logCall(ctx context.Context, logger *slog.Logger, method string, start time.Time, err error, slow time.Duration, unary bool) {
	d := time.Since(start)
	st := status.Convert(err)
	level, ok := callLevel(st.Code(), d, slow, unary)
	if !ok || !logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", st.Code().String()),
		slog.Duration("duration", d),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	msg := "gRPC call failed"
	if err == nil {
		msg = "slow gRPC call"
	} else {
		attrs = append(attrs, slog.String("error", st.Message()))
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}

func unaryLog(logger *slog.Logger, slow time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, logger, info.FullMethod, start, err, slow, true)
		return resp, err
	}
}

func streamLog(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), logger, info.FullMethod, start, err, 0, false)
		return err
	}
}
