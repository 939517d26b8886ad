package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
	"github.com/cedana/cedana/withcriu"
)

// Files the containerd runtime adds beside CRIU's images.
const (
	// SpecFile is the container's OCI spec as containerd holds it.
	SpecFile = "containerd-spec.json"
	// ContainerFile is containerd's record of the container (image, snapshotter, runtime, labels).
	ContainerFile = "containerd-container.json"
	// RootfsFile holds the container's writable-layer changes (dump --rootfs).
	RootfsFile = "rootfs-diff.tar"
)

// containerRecord is what ContainerFile keeps of containerd's record of the container.
type containerRecord struct {
	Image       string            `json:"image"`
	Snapshotter string            `json:"snapshotter"`
	SnapshotKey string            `json:"snapshot_key"`
	Runtime     string            `json:"runtime"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// DumpMiddleware is the containerd runtime's part of a dump: find the container and its task,
// then dump it as the runc container it is.
var DumpMiddleware = adapters.Middleware[adapters.DumpHandler]{ResolveContainer, runcshared.ContainerDump{}.Adapter}

// dumpHandler is the daemon's CRIU, as for every runtime.
var dumpHandler = withcriu.Dump

// ResolveContainer finds the container and its running task in containerd, points the runc
// middleware at containerd's runc root, and records what containerd knows of the container.
// With --rootfs, the writable layer's changes are stored while CRIU holds the task frozen. Once
// CRIU has stopped the task (no --leave-running), it deletes the task, so that the container can
// take a restored one.
func ResolveContainer(next adapters.DumpHandler) adapters.DumpHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
		if req.GetDetails().GetContainerd() == nil {
			return false, errs.Invalid("no container to dump: give its ID (`cedana dump containerd <id>`)")
		}
		d := withDefaults(req.Details.Containerd)
		c, nsCtx, err := connect(ctx, d)
		if err != nil {
			return false, err
		}
		defer c.Close()
		ctr, err := loadContainer(nsCtx, c, d)
		if err != nil {
			return false, err
		}
		info, err := ctr.Info(nsCtx)
		if err != nil {
			return false, fmt.Errorf("container %s: %w", d.Id, err)
		}
		if info.Runtime.Name != RuncShim {
			return false, errs.Precondition("container %s runs under %s: cedana checkpoints containers of containerd's runc shim (%s)", d.Id, info.Runtime.Name, RuncShim)
		}
		task, err := runningTask(nsCtx, ctr, d, runcshared.IsFrozenOnPurpose(ctx, d.Id))
		if err != nil {
			return false, err
		}
		spec, err := ctr.Spec(nsCtx)
		if err != nil {
			return false, fmt.Errorf("spec of container %s: %w", d.Id, err)
		}
		d.Image = info.Image
		if err := writeJSON(st.ImageDir, SpecFile, spec); err != nil {
			return false, err
		}
		record := containerRecord{Image: info.Image, Snapshotter: info.Snapshotter, SnapshotKey: info.SnapshotKey, Runtime: info.Runtime.Name, Labels: info.Labels}
		if err := writeJSON(st.ImageDir, ContainerFile, record); err != nil {
			return false, err
		}
		if d.RootfsOnly {
			return commitRunning(nsCtx, c, task, record, d, resp)
		}
		if d.CommitImage != "" {
			st.DumpFrozen = append(st.DumpFrozen, func() error {
				_, err := commitImage(nsCtx, c, record, d.Id, d.CommitImage)
				return err
			})
		}
		if d.Rootfs {
			// Found before the dump, stored while CRIU holds the task frozen: consistent with
			// the memory images, and a failure resumes the task instead of losing it.
			upper, err := upperDir(nsCtx, c, info.Snapshotter, info.SnapshotKey)
			if err != nil {
				return false, err
			}
			layer := filepath.Join(st.ImageDir, RootfsFile)
			st.DumpFrozen = append(st.DumpFrozen, func() error {
				if err := writeLayer(nsCtx, upper, layer); err != nil {
					return fmt.Errorf("store the container's writable layer: %w", err)
				}
				return nil
			})
		}
		req.Details.Runc = &daemonv1.RuncDetails{Id: d.Id, Root: runcRoot(d.Namespace)}
		st.Log.Info("dumping containerd container", "id", d.Id, "namespace", d.Namespace, "image", d.Image, "pid", task.Pid())
		dumped, err := next(ctx, env, st, req, resp)
		if err != nil {
			return dumped, err
		}
		if !req.Criu.LeaveRunning {
			if err := deleteStoppedTask(nsCtx, task); err != nil {
				st.Log.Warn("dumped, but could not delete the stopped task", "id", d.Id, "error", err)
			}
		}
		return dumped, nil
	}
}

// commitRunning is `dump containerd --rootfs-only --image REF`: the container's writable layer
// becomes image REF while its task is paused, and no CRIU dump is made; the task then runs on.
// The checkpoint directory keeps what containerd knows of the container.
func commitRunning(ctx context.Context, c *client.Client, task client.Task, record containerRecord, d *daemonv1.ContainerdDetails, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
	if err := task.Pause(ctx); err != nil {
		return false, fmt.Errorf("pause container %s for the commit: %w", d.Id, err)
	}
	_, err := commitImage(ctx, c, record, d.Id, d.CommitImage)
	if rerr := task.Resume(context.WithoutCancel(ctx)); rerr != nil && err == nil {
		err = fmt.Errorf("committed, but could not resume container %s: %w", d.Id, rerr)
	}
	if err != nil {
		return false, err
	}
	adapters.RecordTree(resp.Checkpoint, int(task.Pid()))
	return true, nil
}

// deleteStoppedTask waits, up to 10 s, for the shim to report the task's end (CRIU killed it)
// and deletes it.
func deleteStoppedTask(ctx context.Context, task client.Task) error {
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	exited, err := task.Wait(wait)
	if err != nil {
		return err
	}
	if err := (<-exited).Error(); err != nil {
		if wait.Err() != nil && ctx.Err() == nil {
			if st, serr := task.Status(ctx); serr == nil {
				return fmt.Errorf("the task is still %s: %w", st.Status, err)
			}
		}
		return err
	}
	_, err = task.Delete(ctx)
	return err
}

// writeJSON writes v as JSON into dir/name.
func writeJSON(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
