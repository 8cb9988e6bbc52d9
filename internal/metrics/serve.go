package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ShutdownTimeout bounds how long Serve waits for in-flight scrapes when
// its context ends.
const ShutdownTimeout = 5 * time.Second

var errNilMetrics = errors.New("metrics: nil *Metrics")

// Handler serves the registry in the Prometheus text and OpenMetrics
// formats. Failed collections are reported by promhttp's own
// promhttp_metric_handler_errors_total on the same registry.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg,
		EnableOpenMetrics:   true,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// SetReadiness installs what /readyz asks: whether the daemon serves
// (its gRPC health status is SERVING) and, when it does not, why. Until
// it is set, /readyz answers 503 "starting".
func (m *Metrics) SetReadiness(f func() (ready bool, reason string)) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.ready = f
	m.mu.Unlock()
}

// healthz is the liveness probe: the process is up and its HTTP server
// answers. It asks nothing else, so that a cloud outage (which readiness
// reports) never gets the pod restarted.
func (m *Metrics) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "ok\n")
}

// readyz is the readiness probe: 200 while the gRPC health status is
// SERVING, 503 with the reason otherwise.
func (m *Metrics) readyz(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	f := m.ready
	m.mu.Unlock()
	ready, reason := false, "starting"
	if f != nil {
		ready, reason = f()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", reason)
		return
	}
	io.WriteString(w, "ready\n")
}

// Serve listens on addr and serves /metrics, /healthz and /readyz until ctx ends, then shuts
// down gracefully. It returns nil after a shutdown caused by ctx.
func (m *Metrics) Serve(ctx context.Context, addr string) error {
	if m == nil {
		return errNilMetrics
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return m.ServeListener(ctx, l)
}

// ServeListener is Serve on an existing listener, which it closes.
func (m *Metrics) ServeListener(ctx context.Context, l net.Listener) error {
	if m == nil {
		l.Close()
		return errNilMetrics
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", m.healthz)
	mux.HandleFunc("GET /readyz", m.readyz)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("metrics: shutdown: %w", err)
	}
	return nil
}
