package runcshared

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// Files a runc container's dump adds beside CRIU's images.
const (
	// DescriptorsFile is where runc keeps the container's stdio descriptors in a checkpoint;
	// `runc restore` reads it to reconnect them.
	DescriptorsFile = "descriptors.json"
	// ConfigFile is a copy of the bundle's config.json at the time of the dump.
	ConfigFile = "runc-config.json"
	// StateFile is runc's state of the container at the time of the dump.
	StateFile = "runc-state.json"
)

// DefaultRoot is runc's own default state directory.
const DefaultRoot = "/run/runc"

// ContainerDump is the dump of a container runc runs, for runc's own containers and for those of
// runtimes built on runc (containerd's runc shim).
type ContainerDump struct {
	// DeleteAfter deletes the container from runc once CRIU has stopped it (no --leave-running),
	// as `runc checkpoint` does, so that its ID and bundle are free for the restore. Off when
	// another runtime owns runc's state (containerd's shim cleans it up with the task).
	DeleteAfter bool
}

// Adapter resolves the container a dump names (details.runc), refuses one that is not running
// (paused only when its caller froze it on purpose: FrozenOnPurpose),
// records it in the checkpoint, and adds runc's CRIU options and files.
func (cd ContainerDump) Adapter(next adapters.DumpHandler) adapters.DumpHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
		d := req.GetDetails().GetRunc()
		if d == nil {
			return false, errs.Invalid("no container to dump: give its ID (`cedana dump runc <id>`)")
		}
		d.Root = cmp.Or(d.Root, DefaultRoot)
		c, err := Load(d.Root, d.Id)
		if err != nil {
			return false, err
		}
		if err := c.RequireDumpable(ctx); err != nil {
			return false, err
		}
		d.Bundle = c.Bundle()
		pid := c.PID()
		adapters.RecordTree(resp.Checkpoint, pid)
		add, err := c.criuOptions()
		if err != nil {
			return false, err
		}
		st.DumpCRIU = append(st.DumpCRIU, add)
		if err := c.writeFiles(st.ImageDir); err != nil {
			return false, err
		}
		st.Log.Info("dumping runc container", "id", d.Id, "root", d.Root, "pid", pid, "bundle", d.Bundle)
		dumped, err := next(ctx, env, st, req, resp)
		if err != nil {
			return dumped, err
		}
		if cd.DeleteAfter && !req.Criu.LeaveRunning {
			// CRIU killed the container's processes; runc would still list it as stopped.
			if err := (Invocation{Root: d.Root, Args: []string{"delete", "--force", d.Id}}).Run(ctx); err != nil {
				st.Log.Warn("dumped, but could not delete the stopped container from runc", "id", d.Id, "error", err)
			}
		}
		return dumped, nil
	}
}

// writeFiles writes, beside the images, the stdio descriptors `runc restore` reads, the bundle's
// config.json and runc's state of the container.
func (c *Container) writeFiles(dir string) error {
	descriptors, err := json.Marshal(c.state.ExternalDescriptors)
	if err != nil {
		return err
	}
	state, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{DescriptorsFile: descriptors, StateFile: state}
	if bundle := c.Bundle(); bundle != "" {
		if config, err := os.ReadFile(filepath.Join(bundle, "config.json")); err == nil {
			files[ConfigFile] = config
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
