package health

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// criuRunDir is where a CRIU run by root keeps its kernel probe cache, criu.kdat.
const criuRunDir = "/run"

// kdatMin is the least size of a criu.kdat that CRIU can load (4.1's struct kerndat_s is larger);
// a shorter one is stale, and CRIU probes again and removes it.
const kdatMin = 64

// kernelProbeCache says why CRIU cannot keep its kernel probe cache in dir ("": it can, or has
// one). Every CRIU run first probes the kernel's features, and keeps the result in
// dir/criu.kdat for the next ones, but only where dir is a tmpfs (so that a reboot into
// another kernel clears it). Without it, each dump, restore and lazy-pages server spends that
// probe again: about 70 ms on a Firecracker VM, a third of a small dump.
func kernelProbeCache(dir string) string {
	cache := filepath.Join(dir, "criu.kdat")
	if info, err := os.Stat(cache); err == nil && info.Size() >= kdatMin {
		return ""
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return ""
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return fmt.Sprintf("%s is not a tmpfs, so CRIU cannot keep its kernel probe cache (%s): every CRIU run probes the kernel again "+
			"(about 70 ms on a VM); mount a tmpfs on %s, as systemd does", dir, cache, dir)
	}
	if _, err := os.Stat(cache + ".tmp"); err == nil {
		return fmt.Sprintf("%s.tmp, left by a CRIU that was stopped while it wrote its kernel probe cache, keeps every later CRIU from writing it "+
			"(each probes the kernel again): remove it", cache)
	}
	return ""
}
