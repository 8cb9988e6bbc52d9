package metrics

import (
	"context"
	"net"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// A real gRPC server over a real socket: the interceptors count calls by
// method and code, and InitGRPC makes every method's series exist at zero.
func TestGRPCServerMetrics(t *testing.T) {
	m := New()
	s := grpc.NewServer(m.GRPCServerOptions()...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	m.InitGRPC(s)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Stop()

	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if got := value(byName, "grpc_server_started_total", L{"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check"}); got != 0 {
		t.Fatalf("grpc_server_started_total for Check before any call = %v, want 0 (preset)", got)
	}

	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	ctx := context.Background()
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v, want NotFound", err)
	}

	fams, err = m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName = map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	for _, c := range []struct {
		name   string
		labels L
		want   float64
	}{
		{"grpc_server_started_total", L{"grpc_method": "Check"}, 2},
		{"grpc_server_handled_total", L{"grpc_method": "Check", "grpc_code": "OK"}, 1},
		{"grpc_server_handled_total", L{"grpc_method": "Check", "grpc_code": "NotFound"}, 1},
		{"grpc_server_handling_seconds", L{"grpc_method": "Check"}, 2},
	} {
		if got := value(byName, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
