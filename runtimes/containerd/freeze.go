package containerd

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/proctree"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
)

// FreezeCmd is `cedana freeze containerd <id>` and `cedana unfreeze containerd <id>`.
type FreezeCmd struct {
	ID     string `arg:"" name:"id" help:"ID of the container."`
	Target `embed:""`
}

// Targets implements features.TargetCommand.
func (c *FreezeCmd) Targets() ([]*daemonv1.Details, error) {
	return []*daemonv1.Details{{Containerd: &daemonv1.ContainerdDetails{Id: c.ID, Namespace: c.Namespace, Address: c.Address}}}, nil
}

// QueryCmd is `cedana query containerd <id>...`.
type QueryCmd struct {
	IDs    []string `arg:"" name:"id" help:"IDs of the containers."`
	Target `embed:""`
}

// Targets implements features.TargetCommand.
func (c *QueryCmd) Targets() ([]*daemonv1.Details, error) {
	out := make([]*daemonv1.Details, len(c.IDs))
	for i, id := range c.IDs {
		out[i] = &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: id, Namespace: c.Namespace, Address: c.Address}}
	}
	return out, nil
}

var (
	_ features.TargetCommand = (*FreezeCmd)(nil)
	_ features.TargetCommand = (*QueryCmd)(nil)
)

// Freeze pauses or resumes a container's task through containerd, so that containerd (`ctr task
// ls`) and runc agree that it is paused, then running.
func Freeze(ctx context.Context, details *daemonv1.Details, thaw bool) (*daemonv1.FreezeResponse, error) {
	d := withDefaults(details.GetContainerd())
	c, nsCtx, err := connect(ctx, d)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctr, err := loadContainer(nsCtx, c, d)
	if err != nil {
		return nil, err
	}
	task, err := ctr.Task(nsCtx, nil)
	if errdefs.IsNotFound(err) {
		return nil, errs.Precondition("container %s has no task: there is nothing to freeze", d.Id)
	}
	if err != nil {
		return nil, fmt.Errorf("task of container %s: %w", d.Id, err)
	}
	st, err := task.Status(nsCtx)
	if err != nil {
		return nil, fmt.Errorf("status of container %s's task: %w", d.Id, err)
	}
	resp := &daemonv1.FreezeResponse{Detail: "containerd container " + d.Namespace + "/" + d.Id, Pids: proctree.PIDs(int(task.Pid()))}
	switch {
	case thaw && st.Status != client.Paused:
		return nil, errs.Precondition("container %s's task is %s, not paused: there is nothing to unfreeze", d.Id, st.Status)
	case thaw:
		resp.Method = "resume"
		err = task.Resume(nsCtx)
	case st.Status != client.Running:
		return nil, errs.Precondition("container %s's task is %s, not running: there is nothing to freeze", d.Id, st.Status)
	default:
		resp.Method = "pause"
		err = task.Pause(nsCtx)
	}
	if err != nil {
		return nil, fmt.Errorf("%s container %s: %w", resp.Method, d.Id, err)
	}
	return resp, nil
}

// Query describes a containerd container: its task's status and PID, image, bundle and processes.
func Query(ctx context.Context, details *daemonv1.Details) (*daemonv1.Workload, error) {
	d := withDefaults(details.GetContainerd())
	c, nsCtx, err := connect(ctx, d)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctr, err := loadContainer(nsCtx, c, d)
	if err != nil {
		return nil, err
	}
	w := &daemonv1.Workload{Id: d.Id, Namespace: d.Namespace, Root: runcRoot(d.Namespace), Status: "no task"}
	if info, err := ctr.Info(nsCtx); err == nil {
		w.Image = info.Image
	}
	task, err := ctr.Task(nsCtx, nil)
	if err != nil {
		return w, nil //nolint:nilerr // a container without a task is described as such
	}
	if st, err := task.Status(nsCtx); err == nil {
		w.Status = string(st.Status)
	}
	w.Pid = int32(task.Pid())
	w.Processes = proctree.Describe(int(task.Pid()))
	if rc, err := runcshared.Load(w.Root, d.Id); err == nil {
		w.Bundle = rc.Bundle()
	}
	return w, nil
}
