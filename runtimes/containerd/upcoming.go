package containerd

import (
	"context"
	"fmt"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// waitStarted waits, for at most timeout, until container d has a running task: `manage
// containerd --upcoming`. It subscribes to containerd's task-start events before it looks, so
// that a task started in between is not missed, and returns the task.
func waitStarted(nsCtx context.Context, c *client.Client, d *daemonv1.ContainerdDetails, timeout time.Duration) (client.Task, error) {
	nsCtx, cancel := context.WithCancel(nsCtx)
	defer cancel()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	events, errc := c.Subscribe(nsCtx, fmt.Sprintf(`topic=="/tasks/start",namespace==%q`, d.Namespace))
	for {
		if ctr, err := c.LoadContainer(nsCtx, d.Id); err == nil {
			if task, err := runningTask(nsCtx, ctr, d, false); err == nil {
				return task, nil
			}
		}
		select {
		case env := <-events:
			if v, err := typeurl.UnmarshalAny(env.Event); err == nil {
				if start, ok := v.(*apievents.TaskStart); ok && start.ContainerID != d.Id {
					continue
				}
			}
		case <-deadline.C:
			return nil, errs.Timeout("no container %q started in containerd namespace %q within %s: start it, or raise --upcoming-timeout", d.Id, d.Namespace, timeout)
		case err := <-errc:
			if nsCtx.Err() != nil {
				return nil, nsCtx.Err()
			}
			return nil, fmt.Errorf("containerd's events: %w", err)
		}
	}
}
