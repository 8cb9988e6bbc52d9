package transport

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func TestPanicBecomesInternal(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t), TokenFile: tokenFile(t, tokenA)})
	cc := dial(t, ClientConfig{Address: srv.addr, Token: tokenA})

	err := unary(t, callCtx(t), cc, "panic")
	wantCode(t, "panicking unary handler", err, codes.Internal)
	if strings.Contains(err.Error(), "exploded") {
		t.Errorf("the panic value reached the caller: %v", err)
	}
	_, err = streaming(t, callCtx(t), cc, "panic")
	wantCode(t, "panicking stream handler", err, codes.Internal)

	// The server survived both.
	if err := unary(t, callCtx(t), cc, "hi"); err != nil {
		t.Fatalf("call after panics: %v", err)
	}
	logs := srv.logs.String()
	for _, want := range []string{"handler exploded", "stream exploded", "panic in gRPC handler", "helpers_test.go:", "level=ERROR"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, tokenA) {
		t.Fatalf("a token reached the log:\n%s", logs)
	}
}

// Handlers return errdefs errors; the caller sees the class's code and the
// handler's message, unary and streaming alike, and the log the code.
func TestErrdefsBecomeStatus(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t)})
	cc := dial(t, ClientConfig{Address: srv.addr})

	err := unary(t, callCtx(t), cc, "missing")
	wantCode(t, "unary not found", err, codes.NotFound)
	if msg := status.Convert(err).Message(); msg != "job j-1: not found" {
		t.Errorf("unary message %q", msg)
	}
	_, err = streaming(t, callCtx(t), cc, "missing")
	wantCode(t, "stream ended unavailable", err, codes.Unavailable)
	if msg := status.Convert(err).Message(); msg != "watch ended: unavailable" {
		t.Errorf("stream message %q", msg)
	}
	logs := srv.logs.String()
	for _, want := range []string{"code=NotFound", "code=Unavailable"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestMessageSizeLimit(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t), MaxRecvMsgSize: 1024})
	cc := dial(t, ClientConfig{Address: srv.addr})
	if err := unary(t, callCtx(t), cc, strings.Repeat("a", 900)); err != nil {
		t.Fatalf("900-byte request: %v", err)
	}
	wantCode(t, "2 KiB request over a 1 KiB limit", unary(t, callCtx(t), cc, strings.Repeat("a", 2048)), codes.ResourceExhausted)
}

func TestDefaultMessageSizeLimit(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t)})
	cc := dial(t, ClientConfig{Address: srv.addr})
	big := string(bytes.Repeat([]byte("a"), DefaultMaxRecvMsgSize+1))
	wantCode(t, "request over 4 MiB", unary(t, callCtx(t), cc, big), codes.ResourceExhausted)
	if err := unary(t, callCtx(t), cc, big[:DefaultMaxRecvMsgSize-64]); err != nil {
		t.Fatalf("request just under 4 MiB: %v", err)
	}
}

func TestSlowAndFailedCallsLogged(t *testing.T) {
	// A 1 ns threshold makes every successful unary call "slow".
	srv := startServer(t, ServerConfig{Address: sockPath(t), SlowCall: time.Nanosecond})
	cc := dial(t, ClientConfig{Address: srv.addr})
	if err := unary(t, callCtx(t), cc, "hi"); err != nil {
		t.Fatal(err)
	}
	_, err := testgrpc.NewTestServiceClient(cc).EmptyCall(callCtx(t), &testgrpc.Empty{})
	wantCode(t, "unimplemented method", err, codes.Unimplemented)

	logs := srv.logs.String()
	var slow, failed string
	for _, line := range strings.Split(logs, "\n") {
		switch {
		case strings.Contains(line, "slow gRPC call"):
			slow = line
		case strings.Contains(line, "gRPC call failed"):
			failed = line
		}
	}
	for _, want := range []string{"level=WARN", "method=/grpc.testing.TestService/UnaryCall", "code=OK", "duration=", "peer="} {
		if !strings.Contains(slow, want) {
			t.Errorf("slow-call line %q lacks %q", slow, want)
		}
	}
	for _, want := range []string{"level=ERROR", "method=/grpc.testing.TestService/EmptyCall", "code=Unimplemented", "error="} {
		if !strings.Contains(failed, want) {
			t.Errorf("failed-call line %q lacks %q", failed, want)
		}
	}
}

func TestQuietCallsNotLogged(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t), SlowCall: time.Hour})
	cc := dial(t, ClientConfig{Address: srv.addr})
	if err := unary(t, callCtx(t), cc, "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := streaming(t, callCtx(t), cc, "hi"); err != nil {
		t.Fatal(err)
	}
	if err := checkHealth(t, cc); err != nil {
		t.Fatal(err)
	}
	if logs := srv.logs.String(); strings.Contains(logs, "gRPC call") {
		t.Fatalf("successful fast calls were logged:\n%s", logs)
	}
}

func TestCallLevel(t *testing.T) {
	tests := []struct {
		code  codes.Code
		d     time.Duration
		unary bool
		level string
		log   bool
	}{
		{codes.OK, time.Millisecond, true, "", false},
		{codes.OK, 2 * time.Second, true, "WARN", true},
		{codes.OK, time.Hour, false, "", false}, // a long watch is not slow
		{codes.Internal, 0, true, "ERROR", true},
		{codes.Unauthenticated, 0, false, "WARN", true},
		{codes.NotFound, 0, true, "INFO", true},
		{codes.Canceled, 0, false, "DEBUG", true},
	}
	for _, tt := range tests {
		level, ok := callLevel(tt.code, tt.d, time.Second, tt.unary)
		if ok != tt.log || (ok && level.String() != tt.level) {
			t.Errorf("callLevel(%v, %v, unary=%v) = %v, %v; want %s, %v", tt.code, tt.d, tt.unary, level, ok, tt.level, tt.log)
		}
	}
}

func TestHealthWatchStreamWithoutToken(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t), TokenFile: tokenFile(t, tokenA)})
	cc := dial(t, ClientConfig{Address: srv.addr})
	st, err := healthpb.NewHealthClient(cc).Watch(callCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("health Watch without token: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health status %v", resp.GetStatus())
	}
}

func TestMaxConcurrentStreams(t *testing.T) {
	srv := startServer(t, ServerConfig{Address: sockPath(t), MaxConcurrentStreams: 1})
	cc := dial(t, ClientConfig{Address: srv.addr})
	hc := healthpb.NewHealthClient(cc)

	// A health Watch stays open until cancelled: it holds the only slot.
	ctx1, cancel1 := context.WithCancel(callCtx(t))
	w1, err := hc.Watch(ctx1, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w1.Recv(); err != nil {
		t.Fatal(err)
	}
	// A second stream waits for the slot; its short deadline expires
	// while it waits. (Were the limit not enforced it would be served at
	// once, so the deadline is a bound, not a measurement.)
	ctx2, cancel2 := context.WithTimeout(callCtx(t), 300*time.Millisecond)
	defer cancel2()
	w2, err := hc.Watch(ctx2, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w2.Recv()
	}
	wantCode(t, "second stream over a limit of 1", err, codes.DeadlineExceeded)

	cancel1()
	w3, err := hc.Watch(callCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w3.Recv(); err != nil {
		t.Fatalf("stream after the slot was freed: %v", err)
	}
}
