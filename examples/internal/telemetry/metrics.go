package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a new registry (not Prometheus' global one) holding
// the Go runtime and process collectors (go_*, process_*).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves reg in Prometheus' text or OpenMetrics format, for
// a mux of the program's own ("GET /metrics").
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// MetricsServer serves /metrics on its own listener. The caller must call
// Close when finished.
type MetricsServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// StartMetrics listens on addr (host:port; port 0 picks one) and serves reg
// on GET /metrics until ctx is done or Close. An empty addr starts nothing
// and returns a nil *MetricsServer, whose methods do nothing. Errors come
// from listening; serving errors are logged to log.
func StartMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (*MetricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", MetricsHandler(reg))
	s := &MetricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// Addr is the address the server listens on; nil for a nil server.
func (s *MetricsServer) Addr() net.Addr {
	if s == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the server at once and waits for it.
func (s *MetricsServer) Close() error {
	if s == nil {
		return nil
	}
	err := s.srv.Close()
	<-s.done
	return err
}
