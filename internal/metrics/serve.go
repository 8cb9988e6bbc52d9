package metrics

import (
	"context"
	"errors"
	"fmt"
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

// Serve listens on addr and serves /metrics until ctx ends, then shuts
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
