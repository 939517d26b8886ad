package containerd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/cedana/cedana/errs"
)

// PreparePodRestore readies dir, the images of a containerd container's entry of a pod
// checkpoint, for the Kubernetes runtime handler's `runc restore`: the entry must hold the
// containerd spec and the writable layer (`dump containerd --rootfs`), which is applied to the
// overlayfs upper directory of rootfs, the new container's mounted root filesystem, when rootfs is
// given.
func PreparePodRestore(ctx context.Context, dir, rootfs string) error {
	for _, name := range []string{SpecFile, RootfsFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			what := "the containerd spec: it was not made from a containerd container"
			if name == RootfsFile {
				what = "the writable layer: dump the container with its rootfs (`cedana dump containerd --rootfs`, as `cedana dump pod` does)"
			}
			return errs.Invalid("the entry has no %s (%s)", name, what)
		} else if err != nil {
			return errs.Precondition("read the entry's %s: %w", name, err)
		}
	}
	if rootfs == "" {
		return nil
	}
	upper, err := mountedUpperDir(rootfs)
	if err != nil {
		return err
	}
	if err := applyLayer(ctx, filepath.Join(dir, RootfsFile), upper); err != nil {
		return fmt.Errorf("apply the writable layer to %s: %w", upper, err)
	}
	return nil
}

// mountedUpperDir is the upper directory of the overlayfs mounted at rootfs, from this process's
// mount table; a rootfs that is not an overlayfs mount is refused.
func mountedUpperDir(rootfs string) (string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(filepath.Clean(rootfs)))
	if err != nil {
		return "", fmt.Errorf("read the mount table: %w", err)
	}
	return upperDirOf(rootfs, mounts)
}

// upperDirOf is the upperdir= option of the last (topmost) of mounts, the mounts at rootfs.
func upperDirOf(rootfs string, mounts []*mountinfo.Info) (string, error) {
	if len(mounts) == 0 {
		return "", errs.Precondition("the container's root filesystem %s is not a mount point: the writable layer needs the overlayfs snapshotter", rootfs)
	}
	m := mounts[len(mounts)-1]
	if m.FSType != "overlay" {
		return "", errs.Precondition("the container's root filesystem %s is mounted as %s, not overlayfs: the writable layer needs the overlayfs snapshotter", rootfs, m.FSType)
	}
	for _, o := range strings.Split(m.VFSOptions, ",") {
		if dir, ok := strings.CutPrefix(o, "upperdir="); ok {
			return dir, nil
		}
	}
	return "", errs.Precondition("the overlayfs at %s has no upper directory (read-only root filesystem?): the writable layer cannot be applied", rootfs)
}
