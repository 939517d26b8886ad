// Package proctree holds a process tree stopped and lets it run again, with the cgroup v2
// freezer when the tree has a cgroup of its own and with SIGSTOP/SIGCONT otherwise, and
// describes a tree's processes: what `cedana freeze`, `unfreeze` and `query` do for process trees.
package proctree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// Methods of Freeze and Thaw.
const (
	MethodCgroup = "cgroup"
	MethodSignal = "signal"
	MethodNone   = "none"
)

// settle is how long Freeze waits for the tree to report itself stopped.
const settle = 5 * time.Second

// Result says how a tree was frozen or thawed.
type Result struct {
	Method string
	PIDs   []int32
	Detail string
}

// Check refuses a root that cedana must not stop: PID 1, self (the daemon) or a tree that holds
// self, and a process that does not exist.
func Check(root, self int) ([]int, error) {
	switch {
	case root <= 0:
		return nil, errs.Invalid("no process: give the PID of the tree's root")
	case root == 1:
		return nil, errs.Invalid("refusing to freeze PID 1, the init process of this PID namespace")
	case root == self:
		return nil, errs.Invalid("refusing to freeze PID %d: it is the cedana daemon itself", root)
	}
	st, err := sysinfo.ReadStat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.NotFound("no process with PID %d", root)
	}
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", root, err)
	}
	if st.State == 'Z' || st.State == 'X' {
		return nil, errs.Precondition("process %d (%s) has exited: there is nothing to freeze", root, st.Comm)
	}
	tree := sysinfo.Tree(root)
	if slices.Contains(tree, self) {
		return nil, errs.Invalid("refusing to freeze PID %d: the cedana daemon is part of its tree", root)
	}
	return tree, nil
}

// Freeze stops the tree rooted at root: through its cgroup v2 freezer when the tree has a cgroup
// of its own (no process outside the tree in it), else with SIGSTOP to every process; it returns
// once every process is stopped. self is the calling process, which is never stopped.
func Freeze(ctx context.Context, root, self int) (Result, error) {
	tree, err := Check(root, self)
	if err != nil {
		return Result{}, err
	}
	res := Result{PIDs: pids32(tree)}
	if dir, ok := ownCgroup(tree); ok {
		// The kernel notifies a change of cgroup.events (its "frozen" line) to inotify watchers:
		// watch it before freezing, so that the change cannot be missed.
		var changed <-chan fsnotify.Event
		var failed <-chan error
		if w, err := fsnotify.NewWatcher(); err == nil {
			defer w.Close()
			if w.Add(dir+"/cgroup.events") == nil {
				changed, failed = w.Events, w.Errors
			}
		}
		if err := os.WriteFile(dir+"/cgroup.freeze", []byte("1"), 0); err != nil {
			return res, fmt.Errorf("freeze cgroup %s: %w", dir, err)
		}
		res.Method, res.Detail = MethodCgroup, dir
		return res, waitFor(ctx, func() bool { return cgroupFrozen(dir) }, "cgroup "+dir+" to report itself frozen", changed, failed)
	}
	for _, pid := range tree {
		if err := unix.Kill(pid, unix.SIGSTOP); err != nil && !errors.Is(err, unix.ESRCH) {
			return res, fmt.Errorf("stop process %d: %w", pid, err)
		}
	}
	res.Method = MethodSignal
	// A process stopping by SIGSTOP notifies only its parent (waitid): look every few ms.
	return res, waitFor(ctx, func() bool { return allStopped(tree) }, fmt.Sprintf("the processes of tree %d to stop", root), nil, nil)
}

// Thaw lets the tree rooted at root run again: it thaws its own cgroup if that is frozen and
// sends SIGCONT to every stopped process (a tree Freeze stopped, or one restored stopped).
func Thaw(root, self int) (Result, error) {
	tree, err := Check(root, self)
	if err != nil {
		return Result{}, err
	}
	res := Result{PIDs: pids32(tree)}
	var methods []string
	if dir, ok := ownCgroup(tree); ok && cgroupFrozen(dir) {
		if err := os.WriteFile(dir+"/cgroup.freeze", []byte("0"), 0); err != nil {
			return res, fmt.Errorf("thaw cgroup %s: %w", dir, err)
		}
		methods, res.Detail = append(methods, MethodCgroup), dir
	}
	continued := false
	for _, pid := range tree {
		if st, err := sysinfo.ReadStat(pid); err == nil && st.State == 'T' {
			if err := unix.Kill(pid, unix.SIGCONT); err != nil && !errors.Is(err, unix.ESRCH) {
				return res, fmt.Errorf("continue process %d: %w", pid, err)
			}
			continued = true
		}
	}
	if continued {
		methods = append(methods, MethodSignal)
	}
	res.Method = strings.Join(methods, "+")
	if res.Method == "" {
		res.Method = MethodNone
	}
	return res, nil
}

// Describe lists the tree rooted at root, root first, with each process's state: a process in
// a frozen cgroup is "frozen".
func Describe(root int) []*daemonv1.ProcessInfo {
	var out []*daemonv1.ProcessInfo
	for _, pid := range sysinfo.Tree(root) {
		st, err := sysinfo.ReadStat(pid)
		if err != nil {
			continue
		}
		cmdline, _ := sysinfo.Cmdline(pid)
		state := StateName(st.State)
		if dir, ok := cgroupDir(pid); ok && cgroupFrozen(dir) && st.State != 'Z' {
			state = "frozen"
		}
		out = append(out, &daemonv1.ProcessInfo{Pid: int32(pid), Ppid: int32(st.PPID), State: state, Cmdline: cmdline})
	}
	return out
}

// Status sums up a tree's processes: the root's state, or "frozen"/"stopped" when every process is.
func Status(procs []*daemonv1.ProcessInfo) string {
	if len(procs) == 0 {
		return "gone"
	}
	for _, s := range []string{"frozen", "stopped"} {
		if !slices.ContainsFunc(procs, func(p *daemonv1.ProcessInfo) bool { return p.State != s }) {
			return s
		}
	}
	return procs[0].State
}

// StateName is the word for a /proc state letter.
func StateName(s byte) string {
	switch s {
	case 'R':
		return "running"
	case 'S', 'I':
		return "sleeping"
	case 'D':
		return "disk-sleep"
	case 'T':
		return "stopped"
	case 't':
		return "traced"
	case 'Z':
		return "zombie"
	case 'X', 'x':
		return "dead"
	default:
		return string(s)
	}
}

// PIDs lists the tree rooted at root, root first.
func PIDs(root int) []int32 { return pids32(sysinfo.Tree(root)) }

func pids32(tree []int) []int32 {
	out := make([]int32, len(tree))
	for i, pid := range tree {
		out[i] = int32(pid)
	}
	return out
}

func allStopped(tree []int) bool {
	for _, pid := range tree {
		if st, err := sysinfo.ReadStat(pid); err == nil && st.State != 'T' && st.State != 'Z' && st.State != 'X' {
			return false
		}
	}
	return true
}

// waitFor waits until cond holds, ctx ends or settle passes. It looks again at each event of
// changed (or error of failed, an overflow among them); without them (nil), every 5 ms.
func waitFor(ctx context.Context, cond func() bool, what string, changed <-chan fsnotify.Event, failed <-chan error) error {
	deadline := time.NewTimer(settle)
	defer deadline.Stop()
	var tick <-chan time.Time
	if changed == nil {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errs.Precondition("timed out after %s waiting for %s", settle, what)
		case <-changed:
		case <-failed: //nolint:errcheck // an error (an overflow) is one more reason to look again
		case <-tick:
		}
	}
	return nil
}
