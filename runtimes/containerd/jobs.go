package containerd

import (
	"cmp"
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
	"github.com/cedana/cedana/store"
)

// Run starts image d.Image as container d.Id under containerd's runc shim and records its task
// as a managed job. The shim writes the task's output into the job's log (so the container's
// stdio are the shim's pipes, which CRIU can checkpoint).
func Run(ctx context.Context, m *jobs.Manager, req *daemonv1.RunRequest) (_ store.Job, err error) {
	d := withDefaults(req.GetContainerd())
	if d.Image == "" {
		return store.Job{}, errs.Invalid("give the image to run")
	}
	jid, logPath, err := m.NewJob(ctx, req.Jid, req.Log)
	if err != nil {
		return store.Job{}, err
	}
	d.Id = cmp.Or(d.Id, jid)
	c, nsCtx, err := connect(ctx, d)
	if err != nil {
		return store.Job{}, err
	}
	defer c.Close()
	image, err := getImage(nsCtx, c, d)
	if err != nil {
		return store.Job{}, err
	}
	if _, err := c.LoadContainer(nsCtx, d.Id); err == nil {
		return store.Job{}, errs.Exists("containerd already has a container %q in namespace %q: choose another --id", d.Id, d.Namespace)
	}
	specOpts := []oci.SpecOpts{oci.WithImageConfig(image)}
	if len(d.Args) > 0 {
		specOpts = append(specOpts, oci.WithProcessArgs(d.Args...))
	}
	if len(d.Env) > 0 {
		specOpts = append(specOpts, oci.WithEnv(d.Env))
	}
	cleanup := context.WithoutCancel(nsCtx)
	var ctrOpts []client.NewContainerOpts
	if d.Snapshotter != "" {
		ctrOpts = append(ctrOpts, client.WithSnapshotter(d.Snapshotter))
		if unpacked, err := image.IsUnpacked(nsCtx, d.Snapshotter); err != nil || !unpacked {
			if err := image.Unpack(nsCtx, d.Snapshotter); err != nil {
				return store.Job{}, errs.Precondition("unpack image %s for the %s snapshotter: %w", d.Image, d.Snapshotter, err)
			}
		}
	}
	ctrOpts = append(ctrOpts, client.WithImage(image), client.WithNewSnapshot(d.Id, image),
		client.WithRuntime(RuncShim, nil), client.WithNewSpec(specOpts...))
	ctr, err := c.NewContainer(nsCtx, d.Id, ctrOpts...)
	if err != nil {
		return store.Job{}, fmt.Errorf("create container %s: %w", d.Id, err)
	}
	defer func() {
		if err != nil {
			_ = ctr.Delete(cleanup, client.WithSnapshotCleanup)
		}
	}()
	task, err := ctr.NewTask(nsCtx, cio.LogFile(logPath))
	if err != nil {
		return store.Job{}, errs.Precondition("create the task of %s: %w", d.Id, err)
	}
	if err = task.Start(nsCtx); err != nil {
		_, _ = task.Delete(cleanup, client.WithProcessKill)
		return store.Job{}, errs.Precondition("start container %s: %w", d.Id, err)
	}
	return adopt(ctx, m, jid, logPath, d, int(task.Pid()))
}

// Manage adopts the running task of the container a ManageRequest names as a managed job.
func Manage(ctx context.Context, m *jobs.Manager, req *daemonv1.ManageRequest) (store.Job, error) {
	if req.GetDetails().GetContainerd() == nil {
		return store.Job{}, errs.Invalid("no container to manage: give its ID")
	}
	d := withDefaults(req.Details.Containerd)
	c, nsCtx, err := connect(ctx, d)
	if err != nil {
		return store.Job{}, err
	}
	defer c.Close()
	if req.Upcoming {
		task, err := waitStarted(nsCtx, c, d, runcshared.UpcomingTimeout(req))
		if err != nil {
			return store.Job{}, err
		}
		return adopt(ctx, m, req.Jid, "", d, int(task.Pid()))
	}
	ctr, err := loadContainer(nsCtx, c, d)
	if err != nil {
		return store.Job{}, err
	}
	task, err := runningTask(nsCtx, ctr, d, false)
	if err != nil {
		return store.Job{}, err
	}
	return adopt(ctx, m, req.Jid, "", d, int(task.Pid()))
}

// adopt records container d's task, whose init is pid, as job jid (a new JID when empty); the
// task's exit status, which containerd keeps until the task is deleted, is the job's exit code.
func adopt(ctx context.Context, m *jobs.Manager, jid, logPath string, d *daemonv1.ContainerdDetails, pid int) (store.Job, error) {
	details, err := protojson.Marshal(&daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: d.Id, Namespace: d.Namespace, Address: d.Address}})
	if err != nil {
		return store.Job{}, err
	}
	if jid == "" {
		jid = store.NewJID()
	}
	target := &daemonv1.ContainerdDetails{Id: d.Id, Namespace: d.Namespace, Address: d.Address}
	job, err := m.AdoptWaiting(ctx, Name, jid, pid, details, logPath, func() (int, error) { return waitExit(target) })
	if err != nil {
		return store.Job{}, fmt.Errorf("container %s runs, but: %w", d.Id, err)
	}
	return job, nil
}

// waitExit waits, through a connection of its own, for container d's task to exit and returns
// its exit code (containerd's shim reports 128+signal for a killed task).
func waitExit(d *daemonv1.ContainerdDetails) (int, error) {
	c, nsCtx, err := connect(context.Background(), d)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctr, err := loadContainer(nsCtx, c, d)
	if err != nil {
		return 0, err
	}
	task, err := ctr.Task(nsCtx, nil)
	if err != nil {
		return 0, fmt.Errorf("task of container %s: %w", d.Id, err)
	}
	exited, err := task.Wait(nsCtx)
	if err != nil {
		return 0, fmt.Errorf("wait for container %s: %w", d.Id, err)
	}
	st := <-exited
	code, _, err := st.Result()
	if err != nil {
		return 0, fmt.Errorf("exit status of container %s: %w", d.Id, err)
	}
	return int(code), nil
}
