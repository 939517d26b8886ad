// Package server is cedana's daemon: Connect handlers for DaemonService, gRPC health and reflection,
// served over HTTP/1.1 and unencrypted HTTP/2 on a unix socket or TCP.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/cedana/cedana/auth"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/sysinfo"
	"github.com/cedana/cedana/version"
)

// shutdownGrace bounds how long a stopping daemon waits for requests in flight.
const shutdownGrace = 30 * time.Second

// HTTP server limits: how long a client may take to send its headers and may keep an idle
// connection, and how large its headers may be. Bodies are bounded per message (limits.max_request_bytes);
// there is no overall read or write timeout, since attach and progress streams last as long as the job.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// Run serves the daemon until ctx is done, then shuts down gracefully. Every request is authorized
// before any handler runs (see package auth).
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, start StartOptions) error {
	g, err := newGuard(cfg, start, log)
	if err != nil {
		return err
	}
	ln, err := listen(cfg, g)
	if err != nil {
		return err
	}
	defer ln.Close()
	svc, err := newService(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.close()
	if cfg.Metrics.Address != "" {
		stop, err := svc.metrics.Serve(ctx, cfg.Metrics.Address, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	// The daemon's own work (compressing and uploading checkpoints, serving requests) yields the
	// CPU to CRIU and the workloads: archiving while CRIU writes must not keep a workload frozen
	// longer. CRIU and started jobs are set back to normal priority.
	if err := sysinfo.LowerOwnPriority(sysinfo.Background); err != nil {
		log.Warn("cannot lower the daemon's priority", "error", err)
	}

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           g.policy.Handler(newMux(svc, cfg.Limits.MaxRequestBytes, log)),
		Protocols:         protocols,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext:       auth.ConnContext,
		BaseContext:       func(_ net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("cedana daemon started", "version", version.Version, "protocol", cfg.Protocol, "address", cfg.Address,
		"tls", g.tls != nil, "criu", svc.env.CRIU.Binary, "pid", os.Getpid())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	log.Info("stopped")
	return nil
}

// newMux mounts DaemonService, gRPC health and reflection. Every handler refuses a request message
// over maxBytes with resource_exhausted, without buffering it, and answers a panic with internal
// while the daemon lives on.
func newMux(svc *service, maxBytes int64, log *slog.Logger) http.Handler {
	opts := []connect.HandlerOption{
		connect.WithReadMaxBytes(int(maxBytes)),
		connect.WithRecover(func(_ context.Context, spec connect.Spec, _ http.Header, p any) error {
			log.Error("handler panicked", "procedure", spec.Procedure, "panic", p, "stack", string(debug.Stack()))
			return connect.NewError(connect.CodeInternal, fmt.Errorf("the daemon failed while handling %s (a bug: see the daemon's log)", spec.Procedure))
		}),
	}
	mux := http.NewServeMux()
	mux.Handle(daemonv1connect.NewDaemonServiceHandler(svc, append(opts, connect.WithInterceptors(errorInterceptor{log: log}))...))
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(daemonv1connect.DaemonServiceName), opts...))
	reflector := grpcreflect.NewStaticReflector(daemonv1connect.DaemonServiceName, grpchealth.HealthV1ServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, opts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, opts...))
	// A body far larger than any message is cut off at the HTTP layer too, so that not even
	// discarding it costs more than reading the limit. A migration's stream is many messages,
	// each bounded by maxBytes, and the whole by Receive (maxMigrationBytes).
	bounded := http.MaxBytesHandler(mux, maxBytes+bodySlack)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == daemonv1connect.DaemonServiceReceiveProcedure {
			mux.ServeHTTP(w, r)
			return
		}
		bounded.ServeHTTP(w, r)
	})
}

// bodySlack is what a request body may hold besides its message: gRPC's envelope, trailers.
const bodySlack = 64 << 10
