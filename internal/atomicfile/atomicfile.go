// Package atomicfile replaces files so that a reader sees either the old content or the new,
// whole, even across a crash.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Write replaces path with data and mode through a temporary file in the same directory, synced,
// then renamed over path. A path that exists keeps its owner.
func Write(path string, data []byte, mode fs.FileMode) error {
	return write(path, data, mode, true)
}

// WriteOwn is Write for a file that may hold secrets: the new file is the caller's, whoever owned
// the old one, so that a secret written into it is not handed to that owner.
func WriteOwn(path string, data []byte, mode fs.FileMode) error {
	return write(path, data, mode, false)
}

// write is Write, keeping path's owner or not.
func write(path string, data []byte, mode fs.FileMode, keep bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".cedana-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if keep {
		if err := keepOwner(tmp, path); err != nil {
			return err
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("set the mode of %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	return nil
}

// keepOwner gives tmp the owner of path, when path exists and has another. A caller that may not
// give files away (not root: EPERM) replaces the file as its own, as a plain rename would.
func keepOwner(tmp *os.File, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return nil //nolint:nilerr // a new file: nothing to keep
	}
	old, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	cur, err := tmp.Stat()
	if err != nil {
		return err
	}
	if st, ok := cur.Sys().(*syscall.Stat_t); ok && st.Uid == old.Uid && st.Gid == old.Gid {
		return nil
	}
	if err := tmp.Chown(int(old.Uid), int(old.Gid)); err != nil && !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("keep the owner of %s: %w", path, err)
	}
	return nil
}
