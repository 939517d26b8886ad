package containerd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// connect opens a client to the containerd d names and returns a context in d's namespace. A
// missing socket or a containerd that does not answer is an error that says so.
func connect(ctx context.Context, d *daemonv1.ContainerdDetails) (*client.Client, context.Context, error) {
	if _, err := os.Stat(d.Address); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, errs.Precondition("containerd is not running: no socket at %s (start containerd, or pass its --containerd-address)", d.Address)
	}
	c, err := client.New(d.Address, client.WithTimeout(5*time.Second))
	if err != nil {
		return nil, nil, errs.Precondition("cannot reach containerd at %s: %w", d.Address, err)
	}
	nsCtx := namespaces.WithNamespace(ctx, d.Namespace)
	if _, err := c.Version(nsCtx); err != nil {
		c.Close()
		return nil, nil, errs.Precondition("containerd at %s does not answer: %w", d.Address, err)
	}
	return c, nsCtx, nil
}

// loadContainer loads container d.Id, or says how to list the namespace's containers.
func loadContainer(ctx context.Context, c *client.Client, d *daemonv1.ContainerdDetails) (client.Container, error) {
	if d.Id == "" {
		return nil, errs.Invalid("no container ID: give the ID containerd knows the container by")
	}
	ctr, err := c.LoadContainer(ctx, d.Id)
	if errdefs.IsNotFound(err) {
		return nil, errs.NotFound("no container %q in containerd namespace %q (see `ctr -n %s containers ls`)", d.Id, d.Namespace, d.Namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", d.Id, err)
	}
	return ctr, nil
}

// runningTask returns the container's task, which must be running, or paused when pausedOK
// (a pod dump froze it on purpose).
func runningTask(ctx context.Context, ctr client.Container, d *daemonv1.ContainerdDetails, pausedOK bool) (client.Task, error) {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, errs.Precondition("container %s has no running task: there is nothing to checkpoint", d.Id)
	}
	if err != nil {
		return nil, fmt.Errorf("task of container %s: %w", d.Id, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("status of container %s's task: %w", d.Id, err)
	}
	if st.Status != client.Running && !(pausedOK && st.Status == client.Paused) {
		return nil, errs.Precondition("container %s's task is %s, not running: there is nothing to checkpoint", d.Id, st.Status)
	}
	return task, nil
}

// getImage returns image d.Image, which must be in containerd already: cedana does not pull.
func getImage(ctx context.Context, c *client.Client, d *daemonv1.ContainerdDetails) (client.Image, error) {
	image, err := c.GetImage(ctx, d.Image)
	if errdefs.IsNotFound(err) {
		return nil, errs.NotFound("image %s is not in containerd namespace %q, and cedana does not pull images: import it (`ctr -n %s image import <archive>`)",
			d.Image, d.Namespace, d.Namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d.Image, err)
	}
	return image, nil
}

// runcRoot is the runc root of containerd's runc shim for namespace ns.
func runcRoot(ns string) string { return filepath.Join(RuncRoot, ns) }

// Check reports whether containerd answers at its default address.
func Check(ctx context.Context) (string, error) {
	d := withDefaults(nil)
	c, nsCtx, err := connect(ctx, d)
	if err != nil {
		return "", err
	}
	defer c.Close()
	v, err := c.Version(nsCtx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("containerd %s at %s", v.Version, d.Address), nil
}
