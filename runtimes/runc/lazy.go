package runc

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/withcriu"
)

// startLazy starts, for a lazy restore (req.Lazy), CRIU's lazy-pages server on the images, and
// returns it with the flag that has `runc restore` restore lazily; nil and no flag otherwise.
// runc gets no --work-path, so its CRIU's work directory, where it looks for the server's socket,
// is the images directory the server listens in.
func startLazy(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) (*withcriu.Lazy, []string, error) {
	if !req.Lazy {
		return nil, nil, nil
	}
	lazy, err := withcriu.StartLazy(ctx, env, st, resp)
	if err != nil {
		return nil, nil, err
	}
	return lazy, []string{"--lazy-pages"}, nil
}

// unmountLeft unmounts what a `runc restore` killed midway (its lazy-pages server died, its
// request ended) leaves mounted because neither runc nor its CRIU could clean up: runc's bind of
// the rootfs (<root>/<id>/criu-root) and CRIU's cgroup yard in its work directory, the images
// directory (.criu.cgyard.*). Both would keep the directories busy for ever.
func unmountLeft(d *daemonv1.RuncDetails, imageDir string) {
	criuRoot := filepath.Join(d.Root, d.Id, "criu-root")
	if resolved, err := filepath.EvalSymlinks(criuRoot); err == nil {
		criuRoot = resolved
	}
	if resolved, err := filepath.EvalSymlinks(imageDir); err == nil {
		imageDir = resolved
	}
	yard := filepath.Join(imageDir, ".criu.cgyard.")
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != criuRoot && !(strings.HasPrefix(m.Mountpoint, yard) && !strings.Contains(m.Mountpoint[len(yard):], "/")), false
	})
	if err != nil {
		return
	}
	for _, m := range mounts {
		_ = unix.Unmount(m.Mountpoint, unix.MNT_DETACH) // with the mounts below it
		_ = os.Remove(m.Mountpoint)
	}
	_ = os.Remove(filepath.Join(d.Root, d.Id)) // runc's directory for a container it never recorded, once empty
}
