package containerd

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/errs"
)

// opaqueXattr marks an overlayfs directory that hides the lower layers' contents.
const opaqueXattr = "trusted.overlay.opaque"

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

// writeLayer stores dir's tree as a tar file at out: regular files, directories, symlinks and
// the character-device whiteouts and opaque-directory marks of overlayfs.
func writeLayer(dir, out string) (err error) {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		hdr.Format = tar.FormatPAX
		if e.IsDir() {
			hdr.Name += "/"
			var v [8]byte
			if n, err := unix.Lgetxattr(p, opaqueXattr, v[:]); err == nil {
				hdr.PAXRecords = map[string]string{"SCHILY.xattr." + opaqueXattr: string(v[:n])}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// applyLayer unpacks a layer written by writeLayer into dir, an empty snapshot's upper directory.
// Every entry stays inside dir: names are checked and files are created through an os.Root.
func applyLayer(layer, dir string) error {
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
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Base(layer), err)
		}
		name := path.Clean(strings.TrimSuffix(hdr.Name, "/"))
		if !filepath.IsLocal(name) {
			return errs.Invalid("layer entry %q leaves the root filesystem", hdr.Name)
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, mode); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if v, ok := hdr.PAXRecords["SCHILY.xattr."+opaqueXattr]; ok {
				if err := setXattr(root, name, opaqueXattr, v); err != nil {
					return err
				}
			}
		case tar.TypeReg:
			out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return err
			}
		case tar.TypeChar:
			// An overlayfs whiteout: the container deleted this file of its image.
			parent, err := root.Open(path.Dir(name))
			if err != nil {
				return err
			}
			err = unix.Mknodat(int(parent.Fd()), path.Base(name), unix.S_IFCHR|uint32(mode), int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
			parent.Close()
			if err != nil {
				return fmt.Errorf("whiteout %s: %w", name, err)
			}
		default:
			return errs.Invalid("layer entry %q has a type cedana does not restore (%c)", hdr.Name, hdr.Typeflag)
		}
		if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
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
