package withcriu

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/sysinfo"
)

// deathWatch is how long, after CRIU died, the tree's processes are watched for dying: one that
// CRIU killed while it ran injected code dies right after CRIU detaches from it.
const deathWatch = 250 * time.Millisecond

// treeBefore is what Dump knows of the tree before CRIU touches it, so that it can put the
// tree back as it was when CRIU dies without answering.
//
// What a CRIU (4.1.1) killed mid-dump leaves, measured by killing it at each of the ~400 ptrace
// calls of a dump of three processes (one with four threads) and at random times:
//   - No task is left stopped: the kernel wakes a tracee whose tracer exits unless a group stop
//     is pending. (SIGCONT is still sent to one found stopped that was not before.)
//   - A process whose parasite is in daemon mode (the longest phase: its pages being written)
//     returns to its own code when the parasite's socket closes. It keeps the parasite's memfd
//     mapping (about 7 MiB, "/memfd:CRIUMFD (deleted)"), which a later dump carries along.
//   - A process dies of SIGTRAP if CRIU dies while one of its threads holds registers CRIU set to
//     run injected code: from the PTRACE_SETREGSET that points it at a remote syscall (the mmap
//     and memfd calls that install the parasite, the munmap that removes it) or at the parasite
//     (which reads each thread's registers), to the one that restores its registers. The thread
//     runs on into CRIU's int3. Each window lasts microseconds; nothing can undo it.
//   - A freezer cgroup (runc, containerd: --freeze-cgroup) stays frozen if CRIU dies while it
//     freezes the tree, before it has seized every task and thawed the cgroup.
type treeBefore struct {
	procs   []sysinfo.ProcStat // every process of the tree, root first
	freezer string             // the freezer cgroup CRIU freezes ("" for none)
	frozen  bool               // whether that cgroup was frozen already
}

// snapshotTree records the tree rooted at root, and the state of the freezer cgroup freezer.
func snapshotTree(root int, freezer string) treeBefore {
	t := treeBefore{freezer: freezer}
	for _, pid := range sysinfo.Tree(root) {
		if st, err := sysinfo.ReadStat(pid); err == nil {
			t.procs = append(t.procs, st)
		}
	}
	if freezer != "" {
		t.frozen, _ = cgroupFrozen(freezer)
	}
	return t
}

// resume undoes what a CRIU that died mid-dump left behind: it thaws the freezer cgroup CRIU
// froze and sends SIGCONT to the processes left stopped that were not stopped before. It then
// watches the tree for a moment and describes its state for the error message: "the workload runs
// again", or which processes are gone.
func (t treeBefore) resume() string {
	var did []string
	if t.freezer != "" && !t.frozen {
		if frozen, err := cgroupFrozen(t.freezer); err == nil && frozen {
			if err := thawCgroup(t.freezer); err != nil {
				did = append(did, fmt.Sprintf("could not thaw its cgroup %s: %v", t.freezer, err))
			} else {
				did = append(did, "thawed its cgroup "+t.freezer)
			}
		}
	}
	var continued []string
	for _, before := range t.procs {
		st, err := sysinfo.ReadStat(before.PID)
		if err != nil || before.State == 'T' || st.State != 'T' {
			continue
		}
		if signalSame(before, unix.SIGCONT) {
			continued = append(continued, fmt.Sprint(before.PID))
		}
	}
	if len(continued) > 0 {
		did = append(did, "sent SIGCONT to stopped PID "+strings.Join(continued, ", "))
	}
	gone := t.watchDeaths(deathWatch)
	var b strings.Builder
	if len(gone) == 0 {
		b.WriteString("the workload runs again")
	} else {
		fmt.Fprintf(&b, "PID %s of the workload died with CRIU, most likely because CRIU was killed while the process "+
			"ran code CRIU had injected into it, which nothing can undo; the rest runs again", strings.Join(gone, ", "))
	}
	if len(did) > 0 {
		b.WriteString(" (" + strings.Join(did, "; ") + ")")
	}
	return b.String()
}

// kill finishes what CRIU began when it died after a dump without --leave-running: it stops
// the processes of the tree that are still there (and were there before the dump).
func (t treeBefore) kill() {
	for _, p := range t.procs {
		signalSame(p, unix.SIGKILL)
	}
}

// signalSame sends sig to p if it is still the process that started at p.StartTime, through a
// pidfd so that a process that reuses its PID cannot get it. It reports whether it was sent.
func signalSame(p sysinfo.ProcStat, sig unix.Signal) bool {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if !sysinfo.Alive(p.PID, p.StartTime) {
		return false
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0) == nil
}

// watchDeaths waits up to d for the tree's processes to exit and returns those that are gone
// (zombies included) when it ends or when all are gone.
func (t treeBefore) watchDeaths(d time.Duration) []string {
	type watched struct {
		proc sysinfo.ProcStat
		fd   int
	}
	var live []watched
	var gone []string
	for _, p := range t.procs {
		fd, err := unix.PidfdOpen(p.PID, 0)
		if err != nil || !sysinfo.Alive(p.PID, p.StartTime) {
			if err == nil {
				unix.Close(fd)
			}
			gone = append(gone, fmt.Sprintf("%d (%s)", p.PID, p.Comm))
			continue
		}
		live = append(live, watched{p, fd})
	}
	deadline := time.Now().Add(d)
	for len(live) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		fds := make([]unix.PollFd, len(live))
		for i, w := range live {
			fds[i] = unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN}
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
		if n <= 0 {
			continue
		}
		still := live[:0]
		for i, w := range live {
			if fds[i].Revents != 0 {
				unix.Close(w.fd)
				gone = append(gone, fmt.Sprintf("%d (%s)", w.proc.PID, w.proc.Comm))
				continue
			}
			still = append(still, w)
		}
		live = still
	}
	for _, w := range live {
		unix.Close(w.fd)
	}
	return gone
}

// cgroupFrozen reads the freezer state of a cgroup v1 freezer directory (freezer.state: FROZEN or
// FREEZING) or a cgroup v2 directory (cgroup.freeze: 1).
func cgroupFrozen(dir string) (bool, error) {
	if data, err := os.ReadFile(filepath.Join(dir, "freezer.state")); err == nil {
		state := strings.TrimSpace(string(data))
		return state == "FROZEN" || state == "FREEZING", nil
	}
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.freeze"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(data)) == "1", nil
}

// thawCgroup thaws a cgroup v1 freezer or cgroup v2 directory.
func thawCgroup(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "freezer.state")); err == nil {
		return os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	}
	return os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
}
