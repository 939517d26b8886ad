package proctree

import (
	"bufio"
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
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel, ok := strings.CutPrefix(sc.Text(), "0::")
		if !ok || rel == "/" || rel == "" {
			continue
		}
		for _, mnt := range v2Mounts {
			dir := filepath.Join(mnt, rel)
			if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err == nil {
				return dir, true
			}
		}
	}
	return "", false
}

// ownCgroup is the cgroup v2 of tree's root when every process in it (and its descendants) is
// of the tree, and every process of the tree is in it or below it.
func ownCgroup(tree []int) (string, bool) {
	dir, ok := cgroupDir(tree[0])
	if !ok {
		return "", false
	}
	for _, pid := range tree[1:] {
		if d, ok := cgroupDir(pid); !ok || (d != dir && !strings.HasPrefix(d, dir+"/")) {
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
