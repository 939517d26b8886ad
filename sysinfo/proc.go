package sysinfo

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/procfs"
)

// ProcStat is the part of /proc/<pid>/stat that cedana uses.
type ProcStat struct {
	PID   int
	Comm  string
	State byte // R, S, D, Z, T, ...
	PPID  int
	PGID  int
	SID   int
	TTY   int // controlling terminal's device number, 0 for none
	// StartTime is when the process started, in clock ticks since boot: with the PID, it tells a
	// process from a later one that reuses its PID.
	StartTime uint64
}

// ReadStat parses /proc/<pid>/stat. A missing process yields an error wrapping fs.ErrNotExist.
func ReadStat(pid int) (ProcStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	return parseStat(string(data))
}

func parseStat(s string) (ProcStat, error) {
	// The command name is in parentheses and may itself hold spaces and parentheses.
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return ProcStat{}, fmt.Errorf("malformed stat line %q", s)
	}
	fields := strings.Fields(s[closing+1:])
	if len(fields) < 5 {
		return ProcStat{}, fmt.Errorf("malformed stat line %q", s)
	}
	st := ProcStat{Comm: s[open+1 : closing], State: fields[0][0]}
	var err error
	ints := []*int{&st.PPID, &st.PGID, &st.SID, &st.TTY}
	for i, dst := range ints {
		if *dst, err = strconv.Atoi(fields[i+1]); err != nil {
			return ProcStat{}, fmt.Errorf("malformed stat line %q: %w", s, err)
		}
	}
	// Field 22 of the line is the start time; fields here start at field 3 (the state).
	if len(fields) > 19 {
		if st.StartTime, err = strconv.ParseUint(fields[19], 10, 64); err != nil {
			return ProcStat{}, fmt.Errorf("malformed stat line %q: %w", s, err)
		}
	}
	if st.PID, err = strconv.Atoi(strings.TrimSpace(s[:open])); err != nil {
		return ProcStat{}, fmt.Errorf("malformed stat line %q: %w", s, err)
	}
	return st, nil
}

// Cmdline is the process's argument vector.
func Cmdline(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, nil // a kernel thread, a zombie, or a process in the middle of exec
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"), nil
}

// IsChild reports whether pid is a child of this process, which it can wait for.
func IsChild(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.PPID == os.Getpid()
}

// Children lists the direct children of every thread of pid.
func Children(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(data)) {
			if kid, err := strconv.Atoi(field); err == nil {
				kids = append(kids, kid)
			}
		}
	}
	return kids
}

// Tree lists pid and all its descendants, root first, breadth first.
func Tree(pid int) []int {
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, Children(tree[i])...)
	}
	return tree
}

// Alive reports whether pid runs (a zombie does not) and, when start is not 0, is the process
// that started then (ProcStat.StartTime) rather than a later one that reuses its PID.
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := ReadStat(pid)
	if err != nil || st.State == 'Z' || st.State == 'X' {
		return false
	}
	return start == 0 || st.StartTime == start
}

// StartTime is pid's ProcStat.StartTime, 0 when it does not exist.
func StartTime(pid int) uint64 {
	st, err := ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.StartTime
}

// KillTree kills root and every process under it with SIGKILL: the tree is read before each
// round (a killed process's children go to a reaper), twice over to catch processes forked
// meanwhile.
func KillTree(root int) {
	for range 2 {
		for _, pid := range Tree(root) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TreeMemory is the memory a dump of the tree rooted at pid writes at most: the resident and
// swapped-out memory of each of its processes (shared pages counted once per process, so it may
// overstate), in bytes. Processes that are gone are skipped.
func TreeMemory(pid int) int64 {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	var total int64
	for _, p := range Tree(pid) {
		proc, err := fs.Proc(p)
		if err != nil {
			continue
		}
		st, err := proc.NewStatus()
		if err != nil {
			continue
		}
		total += int64(st.VmRSS + st.VmSwap)
	}
	return total
}

// MemAvailable is the memory the kernel estimates is available for new allocations without
// swapping (MemAvailable of /proc/meminfo), in bytes; 0 where unknown.
func MemAvailable() int64 {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	mi, err := fs.Meminfo()
	if err != nil || mi.MemAvailableBytes == nil {
		return 0
	}
	return int64(*mi.MemAvailableBytes)
}
