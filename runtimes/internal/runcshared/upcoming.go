package runcshared

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/opencontainers/runc/libcontainer"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// DefaultUpcomingTimeout bounds `manage --upcoming` when the request sets no timeout.
const DefaultUpcomingTimeout = time.Minute

// UpcomingTimeout is how long `manage --upcoming` waits for its workload to appear.
func UpcomingTimeout(req *daemonv1.ManageRequest) time.Duration {
	if d := req.GetUpcomingTimeout().AsDuration(); d > 0 {
		return d
	}
	return DefaultUpcomingTimeout
}

// WaitRunning waits until runc has a running container id under root and returns it: `manage
// runc --upcoming`. It watches root and the container's state directory (runc creates the
// directory, then removes its exec FIFO when the container starts), so it wakes on each change
// instead of polling, and gives up after timeout.
func WaitRunning(ctx context.Context, root, id string, timeout time.Duration) (*Container, error) {
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, errs.Precondition("cannot watch runc's state directory %s: %w", root, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch runc's state directory: %w", err)
	}
	defer w.Close()
	if err := w.Add(root); err != nil {
		return nil, fmt.Errorf("watch runc's state directory %s: %w", root, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dir, watching := filepath.Join(root, id), false
	for {
		if !watching {
			watching = w.Add(dir) == nil
		}
		if c, err := Load(root, id); err == nil && c.Status() == libcontainer.Running {
			return c, nil
		}
		select {
		case ev := <-w.Events:
			if ev.Name == dir && ev.Has(fsnotify.Remove) {
				watching = false
			}
		case err := <-w.Errors:
			return nil, fmt.Errorf("watch runc's state directory %s: %w", root, err)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, errs.Timeout("no running container %q appeared under %s within %s: start it, or raise --upcoming-timeout", id, root, timeout)
			}
			return nil, ctx.Err()
		}
	}
}
