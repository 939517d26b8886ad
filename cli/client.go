package cli

import (
	"context"
	"net"
	"net/http"

	"connectrpc.com/connect"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// NewClient returns a Connect client of the daemon that cfg points at: over the unix socket or TCP,
// with the bearer token when one is configured. It speaks HTTP/1.1, which needs no connection
// preface and so answers a one-shot CLI command a little sooner than HTTP/2.
func NewClient(cfg config.Config) daemonv1connect.DaemonServiceClient {
	transport := &http.Transport{}
	baseURL := "http://" + cfg.Address
	if cfg.Protocol == config.ProtocolUnix {
		socket := cfg.Address
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
		baseURL = "http://localhost"
	}
	var opts []connect.ClientOption
	if cfg.Token != "" {
		opts = append(opts, connect.WithInterceptors(bearer(cfg.Token)))
	}
	return daemonv1connect.NewDaemonServiceClient(&http.Client{Transport: transport}, baseURL, opts...)
}

// bearer adds the token to every request.
func bearer(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}
