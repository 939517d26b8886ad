package containerd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/runccli"
)

// RestoreMiddleware is the containerd runtime's part of a restore.
var RestoreMiddleware = adapters.Middleware[adapters.RestoreHandler]{ResolveRestore}

// ResolveRestore settles the restored container's ID and image (the request's, else the dumped
// container's) and refuses, before anything is created, a checkpoint not made from a containerd
// container, a containerd that does not answer, an image containerd does not have and an ID
// whose container already has a task.
func ResolveRestore(next adapters.RestoreHandler) adapters.RestoreHandler {
	return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		dumped := resp.GetCheckpoint().GetDetails().GetContainerd()
		d := adapters.OrNew(&adapters.OrNew(&req.Details).Containerd)
		d.Id = cmp.Or(d.Id, dumped.GetId())
		d.Image = cmp.Or(d.Image, dumped.GetImage())
		d.Namespace = cmp.Or(d.Namespace, dumped.GetNamespace())
		d.Address = cmp.Or(d.Address, dumped.GetAddress())
		d = withDefaults(d)
		if err := runccli.RefuseRestoreOptions(req.Criu); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(st.ImageDir, SpecFile)); err != nil {
			return errs.Invalid("checkpoint has no %s: it was not made from a containerd container", SpecFile)
		}
		c, nsCtx, err := connect(ctx, d)
		if err != nil {
			return err
		}
		defer c.Close()
		if ctr, err := c.LoadContainer(nsCtx, d.Id); err == nil {
			if task, err := ctr.Task(nsCtx, nil); err == nil {
				if err := freeStoppedJobTask(nsCtx, req.Jid, d, task); err != nil {
					return err
				}
			}
		} else if d.Image == "" {
			return errs.Invalid("no image to restore container %s onto: pass --image", d.Id)
		} else if _, err := getImage(nsCtx, c, d); err != nil {
			return err
		}
		return next(ctx, env, st, req, resp)
	}
}

// freeStoppedJobTask deletes the stopped task a job's restore finds in its container (the job was
// killed) and refuses any other task in the way.
func freeStoppedJobTask(ctx context.Context, jid string, d *daemonv1.ContainerdDetails, task client.Task) error {
	inUse := errs.Exists("container %s already has a task: restore under another --id, or remove it (`ctr -n %s task kill %s`, `ctr -n %s task rm %s`)",
		d.Id, d.Namespace, d.Id, d.Namespace, d.Id)
	if jid == "" {
		return inUse
	}
	if st, err := task.Status(ctx); err != nil || st.Status != client.Stopped {
		return inUse
	}
	if _, err := task.Delete(ctx); err != nil {
		return fmt.Errorf("delete job %s's stopped task in %s: %w", jid, d.Id, err)
	}
	return nil
}

// RestoreTask restores the checkpoint as the task of container d.Id: an existing container that
// has no task (the dumped one, after dump job), or a new one made from the dumped container's
// spec on a fresh snapshot of the image, with the writable layer's changes when the checkpoint
// has them. containerd's runc shim restores the images (`runc restore`); a job's output goes to
// its log again. On failure nothing created is left behind.
func RestoreTask(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) (err error) {
	d := req.GetDetails().GetContainerd()
	dumped := resp.GetCheckpoint().GetDetails().GetContainerd()
	c, nsCtx, err := connect(ctx, d)
	if err != nil {
		return err
	}
	defer c.Close()
	cleanup := context.WithoutCancel(nsCtx)
	ctr, err := c.LoadContainer(nsCtx, d.Id)
	if errdefs.IsNotFound(err) {
		if ctr, err = newContainer(nsCtx, c, st.ImageDir, d, dumped.GetId()); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_ = ctr.Delete(cleanup, client.WithSnapshotCleanup)
			}
		}()
	} else if err != nil {
		return fmt.Errorf("load container %s: %w", d.Id, err)
	}
	ioCreator := cio.NullIO
	if st.JobLog != "" {
		ioCreator = cio.LogFile(st.JobLog)
	}
	// CRIU's restore.log goes to a directory of ours: containerd removes the task's on failure.
	work, err := os.MkdirTemp(env.TempDir, "cedana-containerd-restore-")
	if err != nil {
		return fmt.Errorf("create CRIU's work directory: %w", err)
	}
	defer os.RemoveAll(work)
	failed := func(what string, err error) error {
		msg := criu.LogQuote(filepath.Join(work, checkpoint.RestoreLog))
		if strings.Contains(msg, "rt_sigreturn") {
			// CRIU's hardware breakpoints do not fire in VMs that do not virtualize debug
			// registers; our own CRIU runs with CRIU_FAULT=130, the shim's inherits containerd's
			// environment.
			msg += "; if this machine is a VM without hardware breakpoints (Firecracker), run containerd with CRIU_FAULT=130 in its environment"
		}
		return errs.Precondition("containerd could not %s %s: %s%s", what, d.Id, firstLine(err), msg)
	}
	start := time.Now()
	task, err := ctr.NewTask(nsCtx, ioCreator, client.WithRestoreImagePath(st.ImageDir), client.WithRestoreWorkPath(work))
	if err != nil {
		return failed("create the restored task of", err)
	}
	if err = task.Start(nsCtx); err != nil {
		_, _ = task.Delete(cleanup, client.WithProcessKill)
		return failed("restore container", err)
	}
	adapters.Observe(resp.Stats, "criu_restore", start)
	resp.Pid = int32(task.Pid())
	st.Log.Info("restored containerd container", "id", d.Id, "namespace", d.Namespace, "pid", task.Pid())
	return nil
}

// newContainer creates container d.Id from the dumped container's spec and record, on a new
// snapshot of image d.Image with the checkpoint's writable-layer changes applied.
func newContainer(ctx context.Context, c *client.Client, imageDir string, d *daemonv1.ContainerdDetails, dumpedID string) (client.Container, error) {
	var spec oci.Spec
	if err := readJSON(imageDir, SpecFile, &spec); err != nil {
		return nil, err
	}
	var info containerRecord
	if err := readJSON(imageDir, ContainerFile, &info); err != nil {
		return nil, err
	}
	if spec.Linux != nil && dumpedID != "" && dumpedID != d.Id {
		// A cgroup of its own: the dumped container may still run (--leave-running).
		spec.Linux.CgroupsPath = strings.Replace(spec.Linux.CgroupsPath, dumpedID, d.Id, 1)
	}
	image, err := getImage(ctx, c, d)
	if err != nil {
		return nil, err
	}
	snapshotter := cmp.Or(info.Snapshotter, "overlayfs")
	ctr, err := c.NewContainer(ctx, d.Id,
		client.WithImage(image),
		client.WithSnapshotter(snapshotter),
		client.WithNewSnapshot(d.Id, image),
		client.WithRuntime(RuncShim, nil),
		client.WithContainerLabels(info.Labels),
		client.WithSpec(&spec),
	)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", d.Id, err)
	}
	layer := filepath.Join(imageDir, RootfsFile)
	if _, err := os.Stat(layer); err == nil {
		upper, err := upperDir(ctx, c, snapshotter, d.Id)
		if err == nil {
			err = applyLayer(ctx, layer, upper)
		}
		if err != nil {
			_ = ctr.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup)
			return nil, fmt.Errorf("apply the checkpoint's writable layer: %w", err)
		}
	}
	return ctr, nil
}

// firstLine is err's message up to its first line break (the shim appends log file paths).
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// readJSON reads dir/name into v.
func readJSON(dir, name string, v any) error {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return errs.Invalid("checkpoint has no %s: it was not made from a containerd container", name)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("checkpoint's %s: %w", name, err)
	}
	return nil
}
