package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/storage"
)

func TestToConnect(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code connect.Code
	}{
		{"invalid", errs.Invalid("bad %s", "x"), connect.CodeInvalidArgument},
		{"not found", errs.NotFound("gone"), connect.CodeNotFound},
		{"exists", errs.Exists("taken"), connect.CodeAlreadyExists},
		{"precondition", errs.Precondition("busy"), connect.CodeFailedPrecondition},
		{"denied", errs.Denied("no"), connect.CodePermissionDenied},
		{"timeout", errs.Timeout("slow"), connect.CodeDeadlineExceeded},
		{"busy", errs.Busy("job x is busy"), connect.CodeAborted},
		{"shutting down", fmt.Errorf("%w: attach again", errShuttingDown), connect.CodeUnavailable},
		{"wrapped kind", fmt.Errorf("outer: %w", errs.NotFound("gone")), connect.CodeNotFound},
		{"the outer kind wins", errs.Precondition("cannot use it: %w", errs.NotFound("gone")), connect.CodeFailedPrecondition},
		{"store's not found", fmt.Errorf("job %q: %w", "x", errdefs.ErrNotFound), connect.CodeNotFound},
		{"reworded", errs.Reword(fmt.Errorf("job %q: %w", "x", errdefs.ErrNotFound), "no job x"), connect.CodeNotFound},
		{"S3 unreachable", fmt.Errorf("x: %w", storage.ErrUnreachable), connect.CodeUnavailable},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
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

func TestNewGuard(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
	openTokenFile := filepath.Join(dir, "open-token")
	require.NoError(t, os.WriteFile(openTokenFile, []byte("s3cret"), 0o644))
	cert, key := writeSelfSigned(t, dir)

	tests := []struct {
		name     string
		edit     func(c *config.Config)
		start    StartOptions
		err      string
		mode     os.FileMode
		tls      bool
		clientCA bool
	}{
		{name: "unix: root only", mode: 0o600},
		{name: "unix with a group: open socket, checked callers", edit: func(c *config.Config) { c.Auth.AllowedGroups = []string{"4242"} }, mode: 0o666},
		{name: "unix with an unknown group name", edit: func(c *config.Config) { c.Auth.AllowedGroups = []string{"no-such-group-xyz"} }, err: "groupadd no-such-group-xyz"},
		{name: "tcp loopback without token", edit: tcp("127.0.0.1:8080", ""), err: "refusing to listen on tcp 127.0.0.1:8080 without a token"},
		{name: "tcp localhost without token", edit: tcp("localhost:8080", ""), err: "CEDANA_TOKEN"},
		{name: "tcp loopback with token", edit: tcp("127.0.0.1:8080", "t")},
		{name: "tcp ipv6 loopback with token", edit: tcp("[::1]:8080", "t")},
		{name: "tcp token from a private file", edit: func(c *config.Config) { tcp("127.0.0.1:1", "")(c); c.TokenFile = tokenFile }},
		{name: "tcp token from an open file", edit: func(c *config.Config) { tcp("127.0.0.1:1", "")(c); c.TokenFile = openTokenFile }, err: "chmod 600 " + openTokenFile},
		{name: "tcp token file missing", edit: func(c *config.Config) { tcp("127.0.0.1:1", "")(c); c.TokenFile = filepath.Join(dir, "none") }, err: "no such file"},
		{name: "tcp non-loopback without TLS", edit: tcp("0.0.0.0:8080", "t"), err: "without TLS"},
		{name: "tcp non-loopback, insecure", edit: tcp("10.1.2.3:8080", "t"), start: StartOptions{Insecure: true}},
		{name: "tcp non-loopback with TLS", edit: func(c *config.Config) { tcp("0.0.0.0:8080", "t")(c); c.TLS.CertFile, c.TLS.KeyFile = cert, key }, tls: true},
		{name: "tcp with mTLS", edit: func(c *config.Config) {
			tcp("0.0.0.0:8080", "t")(c)
			c.TLS.CertFile, c.TLS.KeyFile, c.TLS.ClientCAFile = cert, key, cert
		}, tls: true, clientCA: true},
		{name: "tcp with a bad certificate", edit: func(c *config.Config) { tcp("127.0.0.1:1", "t")(c); c.TLS.CertFile, c.TLS.KeyFile = key, key }, err: "tls.cert_file"},
		{name: "tcp address without port", edit: tcp("no-port", "t"), err: "want host:port"},
		{name: "unknown protocol", edit: func(c *config.Config) { c.Protocol = "udp" }, err: "unknown protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			g, err := newGuard(cfg, tt.start, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.NotNil(t, g.policy)
			assert.Equal(t, tt.mode, g.socketMode)
			assert.Equal(t, tt.tls, g.tls != nil)
			if g.tls != nil {
				assert.Equal(t, tt.clientCA, g.tls.ClientAuth == tls.RequireAndVerifyClientCert)
			}
		})
	}
}

// tcp sets a TCP address and token.
func tcp(addr, token string) func(c *config.Config) {
	return func(c *config.Config) { c.Protocol, c.Address, c.Token = config.ProtocolTCP, addr, token }
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key into dir.
func writeSelfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cedana-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(priv)
	require.NoError(t, err)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return cert, key
}

// TestServe runs the daemon in-process on a temporary socket: the API, unencrypted HTTP/2, gRPC
// reflection, the chain's errors as Connect codes, and shutdown when the context ends.
func TestServe(t *testing.T) {
	cfg := testConfig(t)
	cfg.CRIU.BinaryPath = "/nonexistent/criu" // the API must work without CRIU
	d := startTestDaemon(t, cfg)
	ctx, client, httpClient := context.Background(), d.client, d.http

	list, err := client.ListFeatures(ctx, &daemonv1.ListFeaturesRequest{})
	require.NoError(t, err)
	assert.Equal(t, features.KnownRuntimes, list.KnownRuntimes)

	_, err = client.Dump(ctx, &daemonv1.DumpRequest{})
	assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	_, err = client.Dump(ctx, &daemonv1.DumpRequest{Type: "nosuch"})
	assert.Equal(t, connect.CodeUnimplemented, connect.CodeOf(err))
	assert.ErrorContains(t, err, `unknown runtime "nosuch"`)
	_, err = client.Restore(ctx, &daemonv1.RestoreRequest{Path: filepath.Join(t.TempDir(), "missing")})
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

	require.NoError(t, d.stop(10*time.Second))
	assert.NoFileExists(t, cfg.Address)
}
