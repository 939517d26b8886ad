package containerd

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/archive"
	cfs "github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/errs"
)

// upperDir is the writable directory of an overlayfs snapshot: the container's changes to its
// image, with overlayfs whiteouts for what it deleted.
func upperDir(ctx context.Context, c *client.Client, snapshotter, key string) (string, error) {
	mounts, err := c.SnapshotService(snapshotter).Mounts(ctx, key)
	if err != nil {
		return "", fmt.Errorf("mounts of snapshot %s: %w", key, err)
	}
	for _, m := range mounts {
		for _, o := range m.Options {
			if dir, ok := strings.CutPrefix(o, "upperdir="); ok {
				return dir, nil
			}
		}
	}
	return "", errs.Precondition("snapshot %s (%s snapshotter) has no overlayfs upper directory: --rootfs needs the overlayfs snapshotter", key, snapshotter)
}

// writeLayer stores upper, an overlayfs upper directory, as a tar file at out, with containerd's
// overlayfs diff: continuity's DiffDirChanges written by containerd's archive.ChangeWriter. The
// diff is taken against an empty base, so every entry of upper is recorded as it is, the
// whiteouts as the character devices they are, and an opaque directory as a ".wh..wh..opq"
// entry inside it. applyLayer turns that back into the same upper directory.
func writeLayer(ctx context.Context, upper, out string) (err error) {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	base, err := os.MkdirTemp("", "cedana-empty-base-")
	if err != nil {
		return err
	}
	defer os.Remove(base)
	w := bufio.NewWriterSize(f, 1<<20)
	cw := archive.NewChangeWriter(w, upper)
	if err := cfs.DiffDirChanges(ctx, base, upper, cfs.DiffSourceOverlayFS, cw.HandleChange); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	return w.Flush()
}

// applyLayer unpacks a layer written by writeLayer into dir, an empty snapshot's upper directory,
// with containerd's archive.Apply and its overlayfs whiteout conversion (opaque markers become
// the trusted.overlay.opaque attribute again). layerChecks refuses entries that would leave dir.
func applyLayer(ctx context.Context, layer, dir string) error {
	f, err := os.Open(layer)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	checks := &layerChecks{root: root, opaque: map[string]string{}}
	_, err = archive.Apply(ctx, dir, bufio.NewReaderSize(f, 1<<20),
		archive.WithConvertWhiteout(archive.OverlayConvertWhiteout), archive.WithFilter(checks.filter))
	if err != nil {
		return err
	}
	for name, value := range checks.opaque {
		if err := setXattr(root, name, opaqueXattr, value); err != nil {
			return fmt.Errorf("mark %s opaque: %w", name, err)
		}
	}
	return nil
}

// opaqueXattr marks an overlayfs directory that hides the lower layers' contents.
const opaqueXattr = "trusted.overlay.opaque"

// layerChecks is archive.Apply's filter of a layer's entries.
type layerChecks struct {
	root *os.Root
	// opaque holds the directories that a layer of an earlier cedana marked opaque with the
	// attribute itself, which archive.Apply does not set (trusted.* attributes are refused).
	opaque map[string]string
}

// filter accepts the entries writeLayer writes (directories, regular files, hard and symbolic
// links, and character devices: overlayfs whiteouts), and refuses, as invalid, any other type
// and any entry that leaves root: by its name, its link target, or a symlink on its way there.
// archive.Apply has cleaned each name before.
func (c *layerChecks) filter(hdr *tar.Header) (bool, error) {
	if !filepath.IsLocal(hdr.Name) {
		return false, errs.Invalid("layer entry %q leaves the root filesystem", hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if v, ok := hdr.PAXRecords["SCHILY.xattr."+opaqueXattr]; ok {
			delete(hdr.PAXRecords, "SCHILY.xattr."+opaqueXattr)
			c.opaque[hdr.Name] = v
		}
	case tar.TypeReg, tar.TypeSymlink, tar.TypeChar:
	case tar.TypeLink:
		if !filepath.IsLocal(filepath.Clean(hdr.Linkname)) {
			return false, errs.Invalid("layer entry %q links to %q, outside the root filesystem", hdr.Name, hdr.Linkname)
		}
	default:
		return false, errs.Invalid("layer entry %q has a type cedana does not restore (%c)", hdr.Name, hdr.Typeflag)
	}
	if parent := filepath.Dir(hdr.Name); parent != "." {
		if _, err := c.root.Stat(parent); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, errs.Invalid("layer entry %q leaves the root filesystem: %w", hdr.Name, err)
		}
	}
	return true, nil
}

// setXattr sets an extended attribute on directory name under root.
func setXattr(root *os.Root, name, attr, value string) error {
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Fsetxattr(int(d.Fd()), attr, []byte(value), 0)
}
