// Package daemonclient dials a cedana daemon: the CLI's client, and a daemon's own when it streams
// a migrating workload to another daemon.
package daemonclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"github.com/cedana/cedana/auth"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// New returns a Connect client of the daemon that cfg points at: over the unix socket, or
// TCP with TLS when the config has any TLS setting. Its transport sends the bearer token, when one
// is configured, on every call, unary and streaming. It speaks HTTP/1.1, which needs no connection
// preface and so answers a one-shot CLI command a little sooner than HTTP/2.
func New(cfg config.Config) (daemonv1connect.DaemonServiceClient, error) {
	transport := &http.Transport{}
	baseURL := "http://" + cfg.Address
	switch {
	case cfg.Protocol == config.ProtocolUnix:
		socket := cfg.Address
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
		baseURL = "http://localhost"
	case usesTLS(cfg.TLS):
		conf, err := clientTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = conf
		baseURL = "https://" + cfg.Address
	}
	var rt http.RoundTripper = transport
	if token := cfg.ClientToken(); token != "" && cfg.Protocol == config.ProtocolTCP {
		rt = bearer{token: token, next: transport}
	}
	return daemonv1connect.NewDaemonServiceClient(&http.Client{Transport: rt}, baseURL), nil
}

// usesTLS reports whether the client speaks TLS to a TCP daemon.
func usesTLS(c config.TLS) bool {
	return c.CAFile != "" || c.ClientCertFile != "" || c.CertFile != ""
}

// clientTLS verifies the daemon with tls.ca_file (the system's roots when empty) and presents
// tls.client_cert_file when set.
func clientTLS(c config.TLS) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := auth.LoadCertPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		conf.RootCAs = pool
	}
	if c.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_cert_file %s and tls.client_key_file %s: %w", c.ClientCertFile, c.ClientKeyFile, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// bearer sends "Authorization: Bearer <token>" on every request, whatever the call's kind: an
// interceptor would see unary calls only.
type bearer struct {
	token string
	next  http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(req)
}
