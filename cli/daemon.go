package cli

import (
	"context"

	"github.com/cedana/cedana/config"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
	"github.com/cedana/cedana/internal/startgc"
	"github.com/cedana/cedana/server"
)

// DaemonCmd is `cedana daemon ...`.
type DaemonCmd struct {
	Start DaemonStartCmd `cmd:"" help:"Start the daemon in the foreground (Connect on a unix socket or TCP)."`
	Check DaemonCheckCmd `cmd:"" help:"Ask the running daemon for its health report."`
}

// DaemonStartCmd is `cedana daemon start`.
type DaemonStartCmd struct {
	Insecure       bool   `help:"Allow TCP on a non-loopback address without TLS (the token crosses the network in clear text)."`
	HostMountNS    string `name:"host-mount-ns" help:"In a hostPID, privileged container: serve from this mount namespace (/proc/1/ns/mnt, the host's), so CRIU works on host processes; a no-op when already in it." placeholder:"PATH"`
	MetricsAddress string `help:"Serve Prometheus metrics at http://HOST:PORT/metrics, no token needed (metrics.address; off by default)." placeholder:"HOST:PORT"`
}

// Run serves until ctx ends (SIGINT or SIGTERM).
func (c *DaemonStartCmd) Run(ctx context.Context, loaded config.Loaded, env Env) error {
	startgc.Restore()
	cfg := loaded.Config
	if c.MetricsAddress != "" {
		cfg.Metrics.Address = c.MetricsAddress
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	log := cfg.Log.Logger(env.Stderr)
	for _, w := range loaded.Warnings {
		log.Warn(w)
	}
	if c.HostMountNS != "" {
		root, err := enterHostMountNS(c.HostMountNS, loaded)
		if err != nil {
			return err
		}
		if root != "" {
			log.Info("serving in the host's mount namespace", "mount_ns", c.HostMountNS, "image_root", root)
		}
	}
	return server.Run(ctx, cfg, log, server.StartOptions{Insecure: c.Insecure, ConfigFile: loaded.File})
}

// DaemonCheckCmd is `cedana daemon check`.
type DaemonCheckCmd struct {
	Full bool `help:"Also have the daemon dump and restore a tiny process of its own, step by step."`
}

// Run prints the daemon's health report; the exit code is 1 when it lists problems.
func (c *DaemonCheckCmd) Run(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	resp, err := client.HealthCheck(ctx, &daemonv1.HealthCheckRequest{Full: c.Full})
	if err != nil {
		return err
	}
	return printHealth(env, g.Output, resp)
}
