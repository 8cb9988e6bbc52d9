package metrics

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
)

// RPCBuckets are the gRPC handling-time bounds in seconds: unary calls
// take milliseconds; Watch streams last as long as the client stays.
var RPCBuckets = []float64{0.005, 0.025, 0.1, 0.5, 2.5, 10, 60, 600, 3600}

// newGRPCMetrics makes the standard grpc_server_* metrics
// (grpc_server_started_total, grpc_server_handled_total{grpc_code},
// grpc_server_msg_{received,sent}_total, grpc_server_handling_seconds),
// the names the usual gRPC dashboards and alerts expect.
func newGRPCMetrics() *grpcprom.ServerMetrics {
	return grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(RPCBuckets)))
}

// GRPCServerOptions returns the interceptors that feed the gRPC server
// metrics. Put them before every other interceptor, so that calls refused
// by authentication and the codes set by later interceptors are counted.
func (m *Metrics) GRPCServerOptions() []grpc.ServerOption {
	if m == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.grpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.grpc.StreamServerInterceptor()),
	}
}

// InitGRPC makes the per-method series of every service registered on s
// exist at zero (call it after registering the services, before Serve).
func (m *Metrics) InitGRPC(s *grpc.Server) {
	if m == nil {
		return
	}
	m.grpc.InitializeMetrics(s)
}
