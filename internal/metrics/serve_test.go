package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
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
