package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// entry is one file, directory or symlink of the image's root filesystem.
type entry struct {
	typ  byte // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	mode int64
	link string // symlink target
	src  string // host file a regular file is read from
}

// tree is the image's root filesystem, keyed by path without the leading slash.
type tree map[string]entry

// dir adds directory p (and its parents) with mode.
func (t tree) dir(p string, mode int64) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	if p == "." || p == "" {
		return
	}
	t.dir(path.Dir(p), 0o755)
	if _, ok := t[p]; !ok {
		t[p] = entry{typ: tar.TypeDir, mode: mode}
	}
}

// file adds host file src at image path dst, with src's permissions.
func (t tree) file(dst, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	dst = strings.TrimPrefix(path.Clean(dst), "/")
	t.dir(path.Dir(dst), 0o755)
	t[dst] = entry{typ: tar.TypeReg, mode: int64(fi.Mode().Perm()), src: src}
	return nil
}

// hostPath adds host path p at the same path, reproducing every symlink on the way (/lib64,
// /etc/alternatives, a merged /usr), so that the image resolves p as the host does.
func (t tree) hostPath(p string) error {
	for hops := 0; hops < 40; hops++ {
		resolved, err := t.walkLinks(p)
		if err != nil {
			return err
		}
		if resolved == p {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				return t.copyDir(p, p)
			}
			return t.file(p, p)
		}
		p = resolved
	}
	return fmt.Errorf("%s: too many levels of symbolic links", p)
}

// walkLinks adds the first symlink among p's components, and returns p with it replaced by its
// target, or p itself when no component is a symlink.
func (t tree) walkLinks(p string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	for i := range parts {
		prefix := "/" + path.Join(parts[:i+1]...)
		fi, err := os.Lstat(prefix)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(prefix)
		if err != nil {
			return "", err
		}
		t.dir(path.Dir(prefix), 0o755)
		t[strings.TrimPrefix(prefix, "/")] = entry{typ: tar.TypeSymlink, mode: 0o777, link: target}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(prefix), target)
		}
		return path.Join(append([]string{target}, parts[i+1:]...)...), nil
	}
	return p, nil
}

// copyDir adds the host tree src at image path dst, symlinks as symlinks.
func (t tree) copyDir(dst, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := path.Join(dst, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			t.dir(target, int64(fi.Mode().Perm()))
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			t.dir(path.Dir(target), 0o755)
			t[strings.TrimPrefix(target, "/")] = entry{typ: tar.TypeSymlink, mode: 0o777, link: link}
		case d.Type().IsRegular():
			return t.file(target, p)
		}
		return nil
	})
}

var lddPath = regexp.MustCompile(`(?m)(?:=>\s*)?(/\S+)\s+\(0x`)

// withLibraries adds the host binaries bins and every library ldd says they load, the dynamic
// loader included.
func (t tree) withLibraries(bins ...string) error {
	for _, bin := range bins {
		if err := t.hostPath(bin); err != nil {
			return fmt.Errorf("%s (just deps installs it): %w", bin, err)
		}
		out, err := exec.Command("ldd", bin).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "not a dynamic executable") {
				continue
			}
			return fmt.Errorf("ldd %s: %w: %s", bin, err, out)
		}
		for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
			if err := t.hostPath(m[1]); err != nil {
				return fmt.Errorf("library %s of %s: %w", m[1], bin, err)
			}
		}
	}
	return nil
}

// layer is the tree as an uncompressed tar, in path order, every entry owned by root and dated
// mtime, so that the same inputs give the same bytes.
func (t tree) layer(mtime time.Time) ([]byte, error) {
	names := make([]string, 0, len(t))
	for name := range t {
		names = append(names, name)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		e := t[name]
		h := &tar.Header{Typeflag: e.typ, Name: name, Mode: e.mode, ModTime: mtime, Linkname: e.link, Format: tar.FormatPAX}
		var data []byte
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			var err error
			if data, err = os.ReadFile(e.src); err != nil {
				return nil, err
			}
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
