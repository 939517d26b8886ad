package cli

import (
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/daemonclient"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// NewClient returns a Connect client of the daemon that cfg points at (see daemonclient.New).
func NewClient(cfg config.Config) (daemonv1connect.DaemonServiceClient, error) {
	return daemonclient.New(cfg)
}
