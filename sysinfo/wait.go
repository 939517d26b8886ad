package sysinfo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// recheck is how often a wait looks at /proc itself when the kernel does not tell: without
// pidfds, or for the reaping of a process on kernels whose pidfds report only its exit.
const recheck = 250 * time.Millisecond

// WaitExit waits until the process pid that started at start (ProcStat.StartTime; 0: any) has
// exited, whether or not it is our child. It returns at once when that process is already gone
// or a zombie, and ctx's error if ctx ends first. The wait is on a pidfd in the Go runtime's
// poller: it ties up no thread and involves no polling.
func WaitExit(ctx context.Context, pid int, start uint64) error {
	return waitProcess(ctx, pid, unix.POLLIN, 0, func() bool { return !Alive(pid, start) })
}

// WaitReaped waits until the process pid that started at start (0: any) has been reaped, by
// whichever parent: its PID is free or names a later process. A zombie's pidfd reports its
// reaping (POLLHUP) on recent kernels (6.18 here does); older ones report only the exit, so /proc
// is looked at again every quarter second as well.
func WaitReaped(ctx context.Context, pid int, start uint64) error {
	return waitProcess(ctx, pid, 0, recheck, func() bool {
		st, err := ReadStat(pid)
		return errors.Is(err, fs.ErrNotExist) || (err == nil && start != 0 && st.StartTime != start)
	})
}

// waitProcess waits until process pid's pidfd reports events (POLLHUP always counts) or done
// says so, which it checks first, and then every backstop (0: never) while it waits.
func waitProcess(ctx context.Context, pid int, events int16, backstop time.Duration, done func() bool) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil // no such process
	case err != nil:
		return pollUntil(ctx, done) // no pidfds here (before Linux 5.10, or a seccomp filter)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	if done() { // checked after opening: the pidfd cannot name a later process
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("wait for process %d: %w", pid, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.Close() }) // wakes the wait below
	defer stop()
	for {
		if backstop > 0 {
			_ = f.SetReadDeadline(time.Now().Add(backstop))
		}
		ready := false
		err := rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
			n, _ := unix.Poll(fds, 0)
			ready = n > 0
			return ready // false: the poller waits for the next event on the pidfd
		})
		switch {
		case ready:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			if done() {
				return nil
			}
		case err != nil:
			return fmt.Errorf("wait for process %d: %w", pid, err)
		}
	}
}

// pollUntil checks done every recheck until it holds or ctx ends.
func pollUntil(ctx context.Context, done func() bool) error {
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
