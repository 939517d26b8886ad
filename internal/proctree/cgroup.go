package proctree

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// v2Mounts are where the cgroup v2 hierarchy is mounted: alone, or beside v1 (hybrid).
var v2Mounts = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// cgroupDir is the directory of pid's cgroup v2, false when it has none or is in the root.
func cgroupDir(pid int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", false
	}
	rel, ok := cgroupV2Path(string(data))
	if !ok {
		return "", false
	}
	for _, mnt := range v2Mounts {
		dir := filepath.Join(mnt, rel)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err == nil {
			return dir, true
		}
	}
	return "", false
}

// cgroupV2Path is the cgroup v2 path in the text of /proc/<pid>/cgroup (its "0::" line), false
// when there is none or it is the root.
func cgroupV2Path(procCgroup string) (string, bool) {
	for _, line := range strings.Split(procCgroup, "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok && rel != "/" && rel != "" {
			return rel, true
		}
	}
	return "", false
}

// ownCgroup is the cgroup v2 of tree's root when every process in it (and its descendants) is
// of the tree, and every process of the tree is in it or below it.
func ownCgroup(tree []int) (string, bool) { return ownCgroupOf(tree, cgroupDir) }

// ownCgroupOf is ownCgroup with dirOf telling each process's cgroup directory.
func ownCgroupOf(tree []int, dirOf func(pid int) (string, bool)) (string, bool) {
	dir, ok := dirOf(tree[0])
	if !ok {
		return "", false
	}
	for _, pid := range tree[1:] {
		if d, ok := dirOf(pid); !ok || (d != dir && !strings.HasPrefix(d, dir+"/")) {
			return "", false
		}
	}
	own := true
	_ = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || !own {
			return filepath.SkipAll
		}
		if !e.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			own = false
			return filepath.SkipAll
		}
		for _, field := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(field); err != nil || !slices.Contains(tree, pid) {
				own = false
				return filepath.SkipAll
			}
		}
		return nil
	})
	return dir, own
}

// cgroupFrozen reports whether the cgroup v2 at dir is frozen (cgroup.events: "frozen 1").
func cgroupFrozen(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "frozen 1" {
			return true
		}
	}
	return false
}
