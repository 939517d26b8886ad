package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/cedana/cedana/internal/hostns"
	"github.com/cedana/cedana/k8s"
)

// K8sCmd is `cedana k8s`: a Kubernetes node's set-up, run as root on the node (no daemon needed).
type K8sCmd struct {
	Setup   K8sSetupCmd   `cmd:"" help:"Install the cedana runtime handler: the cedana-runc symlink and the cedana runtime in containerd's CRI configuration."`
	Destroy K8sDestroyCmd `cmd:"" help:"Undo k8s setup: restore containerd's configuration byte for byte and remove the cedana-runc symlink."`
}

// K8sNodeFlags are the paths a node's set-up changes.
type K8sNodeFlags struct {
	ContainerdConfig string `help:"containerd's configuration file (default ${default})." default:"${k8sContainerdConfig}" type:"path" placeholder:"PATH"`
	BinDir           string `help:"Directory of the cedana-runc symlink containerd's runc shim runs (default ${default})." default:"${k8sBinDir}" type:"path" placeholder:"DIR"`
	Restart          bool   `help:"Restart containerd (systemctl restart containerd) when its configuration changed, so that it reads the change."`
	HostMountNS      string `name:"host-mount-ns" help:"In a hostPID, privileged container: work in this mount namespace (/proc/1/ns/mnt, the host's); a no-op when already in it." placeholder:"PATH"`
}

// node enters the mount namespace asked for, if any, and returns the node to change.
func (f K8sNodeFlags) node() (k8s.Node, error) {
	if f.HostMountNS != "" {
		if _, err := hostns.Enter(f.HostMountNS, nil); err != nil {
			return k8s.Node{}, err
		}
	}
	return k8s.Node{ContainerdConfig: f.ContainerdConfig, BinDir: f.BinDir}, nil
}

// K8sSetupCmd is `cedana k8s setup`.
type K8sSetupCmd struct {
	K8sNodeFlags
	CopyBinary bool `help:"Copy this cedana into --bin-dir and link cedana-runc to the copy (for a cedana run from a container image)."`
}

// Run installs the runtime handler and says what it changed.
func (c *K8sSetupCmd) Run(ctx context.Context, g *Globals, env Env) error {
	node, err := c.node()
	if err != nil {
		return err
	}
	node.CopyBinary = c.CopyBinary
	ch, err := node.Setup()
	if err != nil {
		return err
	}
	return reportK8s(ctx, env, g, ch, c.Restart, func(w io.Writer) {
		if c.CopyBinary {
			state := map[bool]string{true: "copied", false: "already current"}[ch.BinaryChanged]
			fmt.Fprintf(w, "binary %s: %s\n", ch.Target, state)
		}
		state := map[bool]string{true: "created", false: "already in place"}[ch.SymlinkChanged]
		fmt.Fprintf(w, "symlink %s -> %s: %s\n", ch.Symlink, ch.Target, state)
		state = map[bool]string{true: "added", false: "already there"}[ch.ConfigChanged]
		fmt.Fprintf(w, "runtime %q in %s: %s (runc: %s, pod annotations %s)\n", k8s.RuntimeHandler, ch.Config, state, ch.Symlink, k8s.AnnotationPrefix)
	})
}

// K8sDestroyCmd is `cedana k8s destroy`.
type K8sDestroyCmd struct {
	K8sNodeFlags
}

// Run undoes setup and says what it changed.
func (c *K8sDestroyCmd) Run(ctx context.Context, g *Globals, env Env) error {
	node, err := c.node()
	if err != nil {
		return err
	}
	ch, err := node.Destroy()
	if err != nil {
		return err
	}
	return reportK8s(ctx, env, g, ch, c.Restart, func(w io.Writer) {
		state := map[bool]string{true: "removed", false: "not there"}[ch.SymlinkChanged]
		fmt.Fprintf(w, "symlink %s: %s\n", ch.Symlink, state)
		switch {
		case ch.ConfigRemoved:
			fmt.Fprintf(w, "%s: removed (cedana k8s setup had created it)\n", ch.Config)
		case ch.ConfigChanged:
			fmt.Fprintf(w, "runtime %q in %s: removed, the file is as it was before setup\n", k8s.RuntimeHandler, ch.Config)
		default:
			fmt.Fprintf(w, "runtime %q in %s: not there\n", k8s.RuntimeHandler, ch.Config)
		}
	})
}

// reportK8s prints what a set-up changed (text or JSON) and, when containerd's configuration
// changed, restarts containerd if asked or says that it must be restarted. A run that changed
// nothing leaves containerd alone, so that an agent can run it at every start.
func reportK8s(ctx context.Context, env Env, g *Globals, ch k8s.Changes, restart bool, text func(io.Writer)) error {
	if g.Output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ch); err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
	} else {
		text(env.Stdout)
	}
	if restart && ch.ConfigChanged {
		if err := k8s.RestartContainerd(ctx); err != nil {
			return err
		}
		if g.Output != "json" {
			fmt.Fprintln(env.Stdout, "containerd restarted")
		}
		return nil
	}
	if ch.ConfigChanged && g.Output != "json" {
		fmt.Fprintln(env.Stdout, "restart containerd for the change to take effect (e.g. systemctl restart containerd, or pass --restart)")
	}
	return nil
}
