package cli

import (
	"errors"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"

	"github.com/cedana/cedana/config"
)

// TestDescribeUnavailable: the client failing to dial the daemon says how to start one; an
// unavailable error the daemon sent (a containerd it could not reach) is the daemon's own line.
func TestDescribeUnavailable(t *testing.T) {
	cfg := config.Config{Address: "/run/cedana.sock", Protocol: "unix"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			"client cannot dial", connect.NewError(connect.CodeUnavailable, errors.New("dial unix /run/cedana.sock: connect: no such file or directory")),
			"cannot reach the cedana daemon at /run/cedana.sock (unix): is it running?",
		},
		{
			"daemon's own", connect.NewWireError(connect.CodeUnavailable, errors.New("task of container web: dial unix /run/containerd/containerd.sock: connect: connection refused")),
			"task of container web: dial unix /run/containerd/containerd.sock: connect: connection refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Contains(t, describe(tt.err, cfg), tt.want)
		})
	}
}
