package runcshared

import (
	"github.com/opencontainers/runc/libcontainer"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/proctree"
)

// Freeze pauses container id of runc root (thaw false) or resumes it, as `runc pause` and `runc
// resume` do, so that runc lists it paused, then running.
func Freeze(root, id string, thaw bool) (*daemonv1.FreezeResponse, error) {
	c, err := Load(root, id)
	if err != nil {
		return nil, err
	}
	resp := &daemonv1.FreezeResponse{Detail: "runc container " + id, Pids: proctree.PIDs(c.PID())}
	if thaw {
		if c.Status() != libcontainer.Paused {
			return nil, errs.Precondition("container %s is %s, not paused: there is nothing to unfreeze", id, c.Status())
		}
		resp.Method = "resume"
		return resp, c.Resume()
	}
	if err := c.RequireRunning(); err != nil {
		return nil, err
	}
	resp.Method = "pause"
	return resp, c.Pause()
}

// Query describes container id of runc root: its status, bundle, root PID and processes.
func Query(root, id string) (*daemonv1.Workload, error) {
	c, err := Load(root, id)
	if err != nil {
		return nil, err
	}
	w := &daemonv1.Workload{Id: id, Status: c.Status().String(), Bundle: c.Bundle(), Root: root}
	if c.Status() != libcontainer.Stopped {
		w.Pid = int32(c.PID())
		w.Processes = proctree.Describe(c.PID())
	}
	return w, nil
}
