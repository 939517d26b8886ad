package sysinfo

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Background is the nice value of the daemon's own threads: its work (compressing, uploading)
// yields the CPU to CRIU and to the workloads, which run at Normal.
const (
	Background = 10
	Normal     = 0
)

// LowerOwnPriority sets every thread of this process to nice prio. Linux keeps a nice value per
// thread and new threads inherit their creator's, so threads started later get it too.
func LowerOwnPriority(prio int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, prio); err != nil {
			return fmt.Errorf("set the nice value of thread %d: %w", tid, err)
		}
	}
	return nil
}

// SetPriority sets the nice value of process pid's main thread (a process that has just started
// has no other), e.g. back to Normal for a child of a niced daemon.
func SetPriority(pid, prio int) error {
	return unix.Setpriority(unix.PRIO_PROCESS, pid, prio)
}
