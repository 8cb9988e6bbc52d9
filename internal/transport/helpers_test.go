package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testService is grpc's interop TestService: a real unary and a real
// server-streaming method that, unlike health, need a token. A payload
// body of "panic" makes either panic; "missing" makes either return an
// errdefs error, as replicatord's handlers do.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (testService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if string(req.GetPayload().GetBody()) == "panic" {
		panic("handler exploded")
	}
	if string(req.GetPayload().GetBody()) == "missing" {
		return nil, fmt.Errorf("job j-1: %w", errdefs.ErrNotFound)
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: []byte("ok")}}, nil
}

func (testService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	if string(req.GetPayload().GetBody()) == "panic" {
		panic("stream exploded")
	}
	if string(req.GetPayload().GetBody()) == "missing" {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: []byte("tick")}}); err != nil {
			return err
		}
		return fmt.Errorf("watch ended: %w", errdefs.ErrUnavailable)
	}
	for range 3 {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: []byte("tick")}}); err != nil {
			return err
		}
	}
	return nil
}

// FullDuplexCall echoes each message until the client closes its side: a
// stream that stays open as long as the test wants, like a Watch.
func (testService) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

type testServer struct {
	// addr is what a ClientConfig should dial.
	addr string
	logs *syncBuffer
}

// startServer listens per cfg and serves health plus the test service,
// logging at debug level into the returned buffer.
func startServer(t testing.TB, cfg ServerConfig) *testServer {
	t.Helper()
	lis, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen(%+v): %v", cfg, err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts, err := ServerOptions(cfg, logger)
	if err != nil {
		lis.Close()
		t.Fatalf("ServerOptions: %v", err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	testgrpc.RegisterTestServiceServer(srv, testService{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := lis.Addr().String()
	if ul, ok := lis.(*unixListener); ok {
		addr = "unix://" + ul.path
	}
	return &testServer{addr: addr, logs: logs}
}

func dial(t testing.TB, cfg ClientConfig) *grpc.ClientConn {
	t.Helper()
	cc, err := Dial(cfg)
	if err != nil {
		t.Fatalf("Dial(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func callCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkHealth makes one health call and returns its error.
func checkHealth(t *testing.T, cc *grpc.ClientConn) error {
	t.Helper()
	_, err := healthpb.NewHealthClient(cc).Check(callCtx(t), &healthpb.HealthCheckRequest{})
	return err
}

func unary(t testing.TB, ctx context.Context, cc *grpc.ClientConn, body string) error {
	t.Helper()
	_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(body)}})
	return err
}

// streaming reads the whole server stream and returns how many messages
// arrived and the final error (nil on a clean end).
func streaming(t *testing.T, ctx context.Context, cc *grpc.ClientConn, body string) (int, error) {
	t.Helper()
	st, err := testgrpc.NewTestServiceClient(cc).StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(body)}})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		_, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: code %v (err %v), want %v", what, got, err, want)
	}
}

// sockPath is a socket path in a fresh short temp dir.
func sockPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "r.sock")
}
