// Package server is cedana's daemon: Connect handlers for DaemonService, gRPC health and reflection,
// served over HTTP/1.1 and unencrypted HTTP/2 on a unix socket or TCP.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/sysinfo"
	"github.com/cedana/cedana/version"
)

// shutdownGrace bounds how long a stopping daemon waits for requests in flight.
const shutdownGrace = 30 * time.Second

// NewLogger returns the daemon's slog logger writing to w in cfg's format and level.
func NewLogger(w io.Writer, cfg config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run serves the daemon until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	defer ln.Close()
	svc, err := newService(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.close()
	// The daemon's own work (compressing and uploading checkpoints, serving requests) yields the
	// CPU to CRIU and the workloads: archiving while CRIU writes must not keep a workload frozen
	// longer. CRIU and started jobs are set back to normal priority.
	if err := sysinfo.LowerOwnPriority(sysinfo.Background); err != nil {
		log.Warn("cannot lower the daemon's priority", "error", err)
	}

	mux := http.NewServeMux()
	mux.Handle(daemonv1connect.NewDaemonServiceHandler(svc, connect.WithInterceptors(errorInterceptor{log: log})))
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(daemonv1connect.DaemonServiceName)))
	reflector := grpcreflect.NewStaticReflector(daemonv1connect.DaemonServiceName, grpchealth.HealthV1ServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           requireToken(cfg.Token, mux),
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(_ net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	log.Info("cedana daemon started", "version", version.Version, "protocol", cfg.Protocol, "address", cfg.Address,
		"criu", svc.opts.CRIU.Binary, "pid", os.Getpid())

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

// requireToken rejects requests without "Authorization: Bearer <token>" when a token is set.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := "Bearer " + token
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":"unauthenticated","message":"missing or wrong bearer token: set CEDANA_TOKEN"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// resolveCRIU finds the CRIU binary and its version; a daemon without a usable CRIU still starts
// (health checks say why) and its dumps fail with the same explanation.
func resolveCRIU(ctx context.Context, cfg config.Config, log *slog.Logger) (*criu.Client, int32) {
	path, err := criu.FindBinary(cfg.CRIU.BinaryPath)
	if err != nil {
		log.Warn("no usable CRIU: dumps and restores will fail until one is installed", "error", err)
		return &criu.Client{Binary: cfg.CRIU.BinaryPath}, 0
	}
	client := &criu.Client{Binary: path}
	v, err := client.Version(ctx)
	if err != nil {
		log.Warn("cannot read CRIU's version", "criu", path, "error", strings.TrimSpace(err.Error()))
	}
	return client, int32(v)
}
