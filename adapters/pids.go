package adapters

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// liveHolderGrace is how long a restore waits for a PID held by a live (not zombie) process; such
// a holder is most likely a workload dumped with --leave-running and will not go away by itself.
const liveHolderGrace = 2 * time.Second

// WaitForFreePIDs waits, up to env.PIDWaitTimeout, until no process holds a PID of the checkpoint's
// tree. A killed workload can linger as a zombie until its parent reaps it, and CRIU cannot restore
// a PID that is still taken ("File exists").
func WaitForFreePIDs(next RestoreHandler) RestoreHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		ck := resp.GetCheckpoint()
		pids := ck.GetPids()
		if len(pids) == 0 && ck.GetPid() > 0 {
			pids = []int32{ck.GetPid()}
		}
		start := time.Now()
		for _, pid := range pids {
			if err := waitForPID(ctx, int(pid), start, env.PIDWaitTimeout); err != nil {
				return err
			}
		}
		Observe(resp.Stats, "wait_pids", start)
		return next(ctx, env, st, req, resp)
	}
}

// waitForPID waits until pid is free: a live holder's exit, then a zombie's reaping, are events
// of its pidfd (sysinfo.WaitExit, sysinfo.WaitReaped), each awaited until the limit at most.
func waitForPID(ctx context.Context, pid int, start time.Time, timeout time.Duration) error {
	for {
		st, err := sysinfo.ReadStat(pid)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		waited := time.Since(start)
		limit := timeout
		live := err == nil && st.State != 'Z' && st.State != 'X'
		if live {
			limit = min(timeout, liveHolderGrace)
		}
		if waited >= limit {
			if err == nil && st.State == 'Z' {
				return errs.Timeout("PID %d of the checkpoint is still held by an unreaped zombie (%s, parent %d) after %s: "+
					"its parent must reap it before the restore can use the PID", pid, st.Comm, st.PPID, waited.Round(time.Millisecond))
			}
			return errs.Precondition("PID %d of the checkpoint is in use by a running process (%s): "+
				"stop it first (was the workload dumped with --leave-running?)", pid, st.Comm)
		}
		wait, cancel := context.WithTimeout(ctx, limit-waited)
		if live {
			err = sysinfo.WaitExit(wait, pid, st.StartTime)
		} else {
			err = sysinfo.WaitReaped(wait, pid, st.StartTime)
		}
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("wait for PID %d to be free: %w", pid, err)
		}
	}
}
