package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is the one path the metrics endpoint serves.
const Path = "/metrics"

// Handler serves the metrics on Path, GET and HEAD only, and 404 everywhere else: the endpoint
// needs no token because it serves nothing but the metrics.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		// Anyone who reaches the port may scrape (no token): one scrape at a time bounds what
		// they can make the daemon do (each reads the jobs from the store).
		MaxRequestsInFlight: 1,
		Registry:            m.reg, // promhttp_metric_handler_errors_total
		EnableOpenMetrics:   true,
	}))
	return mux
}

// Server limits: scrapers are small and quick.
const (
	readHeaderTimeout = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	shutdownGrace     = 5 * time.Second
)

// Serve listens on address (host:port) and serves Handler until the returned stop is called,
// which shuts the server down and waits until it has.
func (m *Metrics) Serve(ctx context.Context, address string, log *slog.Logger) (stop func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w (free the port, or set metrics.address to another)", address, err)
	}
	srv := &http.Server{
		Handler:           m.Handler(log),
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "address", address, "error", err)
		}
	}()
	log.Info("serving metrics", "address", ln.Addr().String(), "path", Path)
	return func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx) // scrapes are short; one cut off is retried by the scraper
		<-done
	}, nil
}
