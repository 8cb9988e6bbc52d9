package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestServeListenerScrapesAndShutsDown(t *testing.T) {
	m := New()
	m.ObserveThrottle("DescribeImages")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- m.ServeListener(ctx, l) }()

	fams := scrape(t, "http://"+addr+"/metrics")
	if got := value(fams, "replicatord_ecs_throttles_total", L{"action": "DescribeImages"}); got != 1 {
		t.Fatalf("throttles over the served endpoint = %v", got)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / = %s, want 404: only /metrics is served", resp.Status)
	}
	resp, err = http.Post("http://"+addr+"/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %s, want 405", resp.Status)
	}
	http.DefaultClient.CloseIdleConnections()

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("ServeListener after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener did not return after its context ended")
	}
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after shutdown: %v, want connection refused", err)
	}
}

func TestServeAddressErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = New().Serve(context.Background(), busy.Addr().String())
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("Serve on a busy address: %v", err)
	}
	err = New().Serve(context.Background(), "not-an-address")
	if err == nil || !strings.Contains(err.Error(), "not-an-address") {
		t.Fatalf("Serve on a bad address: %v", err)
	}
}

func TestHealthzAndReadyz(t *testing.T) {
	m := New()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.ServeListener(ctx, l) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	}()
	defer http.DefaultClient.CloseIdleConnections()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Errorf("/readyz before SetReadiness = %d %q, want 503 starting", code, body)
	}
	var mu sync.Mutex
	ready, reason := false, "cloud unreachable: dial tcp: connection refused"
	m.SetReadiness(func() (bool, string) { mu.Lock(); defer mu.Unlock(); return ready, reason })
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "cloud unreachable") {
		t.Errorf("/readyz NOT_SERVING = %d %q, want 503 with the reason", code, body)
	}
	// Liveness does not follow readiness: an outage must not restart the pod.
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while not ready = %d, want 200", code)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz SERVING = %d %q, want 200 ready", code, body)
	}
	resp, err := http.Post(base+"/readyz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz = %s, want 405", resp.Status)
	}
}
