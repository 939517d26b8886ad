package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

func TestToConnect(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code connect.Code
	}{
		{"invalid", adapters.Invalid("bad %s", "x"), connect.CodeInvalidArgument},
		{"not found", adapters.NotFound("gone"), connect.CodeNotFound},
		{"exists", adapters.Exists("taken"), connect.CodeAlreadyExists},
		{"precondition", adapters.Precondition("busy"), connect.CodeFailedPrecondition},
		{"denied", adapters.Denied("no"), connect.CodePermissionDenied},
		{"timeout", adapters.Timeout("slow"), connect.CodeDeadlineExceeded},
		{"wrapped kind", fmt.Errorf("outer: %w", adapters.NotFound("gone")), connect.CodeNotFound},
		{"not compiled in", &features.NotCompiledInError{Runtime: "runc", Feature: "x"}, connect.CodeUnimplemented},
		{"unknown runtime", fmt.Errorf("x: %w", features.ErrUnavailable), connect.CodeUnimplemented},
		{"cancelled", context.Canceled, connect.CodeCanceled},
		{"connect error kept", connect.NewError(connect.CodeAborted, errors.New("a")), connect.CodeAborted},
		{"anything else", errors.New("boom"), connect.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := toConnect(tt.err)
			assert.Equal(t, tt.code, got.Code())
			want := tt.err.Error()
			var cerr *connect.Error
			if errors.As(tt.err, &cerr) {
				want = cerr.Message()
			}
			assert.Equal(t, want, got.Message(), "the message is the error's own line")
		})
	}
}

func TestCheckTCPAddress(t *testing.T) {
	tests := []struct {
		addr  string
		token bool
		ok    bool
	}{
		{"127.0.0.1:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{"0.0.0.0:8080", false, false},
		{"10.1.2.3:8080", false, false},
		{"0.0.0.0:8080", true, true},
		{"no-port", false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s token=%v", tt.addr, tt.token), func(t *testing.T) {
			err := checkTCPAddress(tt.addr, tt.token)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

// TestServe runs the daemon in-process on a temporary socket: the API, unencrypted HTTP/2, gRPC
// reflection, the chain's errors as Connect codes, and shutdown when the context ends.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Address = filepath.Join(dir, "cedana.sock")
	cfg.Checkpoint.Dir = filepath.Join(dir, "ck")
	cfg.CRIU.BinaryPath = "/nonexistent/criu" // the API must work without CRIU
	cfg.DB.Path = filepath.Join(dir, "cedana.db")
	cfg.Jobs.LogDir = filepath.Join(dir, "logs")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("daemon did not stop")
		}
		assert.NoFileExists(t, cfg.Address)
	})
	require.Eventually(t, func() bool {
		conn, err := net.Dial("unix", cfg.Address)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)

	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", cfg.Address)
		},
		Protocols: new(http.Protocols),
	}
	transport.Protocols.SetUnencryptedHTTP2(true)
	httpClient := &http.Client{Transport: transport}
	client := daemonv1connect.NewDaemonServiceClient(httpClient, "http://localhost", connect.WithGRPC())

	list, err := client.ListFeatures(ctx, &daemonv1.ListFeaturesRequest{})
	require.NoError(t, err)
	assert.Equal(t, features.KnownRuntimes, list.KnownRuntimes)

	_, err = client.Dump(ctx, &daemonv1.DumpRequest{})
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	_, err = client.Dump(ctx, &daemonv1.DumpRequest{Type: "nosuch"})
	assert.Equal(t, connect.CodeUnimplemented, connect.CodeOf(err))
	assert.ErrorContains(t, err, `unknown runtime "nosuch"`)
	_, err = client.Restore(ctx, &daemonv1.RestoreRequest{Path: filepath.Join(dir, "missing")})
	assert.Equal(t, connect.CodeNotFound, connect.CodeOf(err))

	health, err := client.HealthCheck(ctx, &daemonv1.HealthCheckRequest{})
	require.NoError(t, err)
	assert.False(t, health.CriuCheckOk)
	assert.NotEmpty(t, health.Errors)

	stream := grpcreflect.NewClient(httpClient, "http://localhost").NewStream(ctx)
	services, err := stream.ListServices()
	require.NoError(t, err)
	var names []string
	for _, s := range services {
		names = append(names, string(s))
	}
	assert.Contains(t, names, daemonv1connect.DaemonServiceName)
	assert.Contains(t, names, "grpc.health.v1.Health")
	_, _ = stream.Close()
}
