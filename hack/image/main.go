// Command image builds cedana's container image as an OCI image layout tarball, without Docker or
// a registry (`just image`): the static cedana binary, the CRIU prefix `just deps` installs, runc
// and iptables with the libraries they load, in one layer with fixed dates.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// options are the command line.
type options struct {
	binary, criu, out, ref, version, revision, source, created string
	tools                                                      []string
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "bin/cedana", "the static cedana binary (just build)")
	flag.StringVar(&o.criu, "criu", "/opt/cedana/criu", "CRIU's private prefix (just deps), copied to the same path")
	flag.StringVar(&o.out, "o", "bin/cedana-image.tar", "the OCI image layout tarball to write")
	flag.StringVar(&o.ref, "ref", "docker.io/cedana/cedana:dev", "the image's name (what `ctr image import` names it)")
	flag.StringVar(&o.version, "version", "dev", "org.opencontainers.image.version")
	flag.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision (the git commit)")
	flag.StringVar(&o.source, "source", "https://github.com/cedana/cedana", "org.opencontainers.image.source")
	flag.StringVar(&o.created, "created", "1970-01-01T00:00:00Z", "the image's and its files' date (RFC 3339), e.g. the commit's")
	flag.Parse()
	o.tools = []string{
		"/usr/sbin/runc", "/usr/sbin/iptables", "/usr/sbin/iptables-restore", "/usr/sbin/iptables-save",
		"/usr/sbin/ip6tables", "/usr/sbin/ip6tables-restore", "/usr/sbin/ip6tables-save",
	}
	if err := build(o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", o.out, "as", o.ref)
}

// entrypoint runs the daemon; --host-mount-ns makes it work in the host's mount namespace when
// the container shares the host's PID namespace (and changes nothing when it does not).
var entrypoint = []string{"/usr/bin/cedana", "daemon", "start", "--host-mount-ns", "/proc/1/ns/mnt"}

// build writes the image described by o to o.out.
func build(o options) error {
	created, err := time.Parse(time.RFC3339, o.created)
	if err != nil {
		return fmt.Errorf("-created %q is not an RFC 3339 date: %w", o.created, err)
	}
	ref, err := name.ParseReference(o.ref)
	if err != nil {
		return fmt.Errorf("-ref %q: %w", o.ref, err)
	}
	root, err := rootfs(o)
	if err != nil {
		return err
	}
	data, err := root.layer(created)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return err
	}
	img := mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":    "cedana",
		"org.opencontainers.image.version":  o.version,
		"org.opencontainers.image.revision": o.revision,
		"org.opencontainers.image.source":   o.source,
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		Entrypoint: entrypoint,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + filepath.Join(o.criu, "bin")},
		Labels:     labels,
		WorkingDir: "/",
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	annotations := map[string]string{
		// ctr image import names the image after this, with no flags.
		"io.containerd.image.name": strings.Replace(ref.Name(), "index.docker.io/", "docker.io/", 1),
		// An OCI layout's own tag (skopeo's oci-archive:, crane).
		"org.opencontainers.image.ref.name": ref.Identifier(),
	}
	for k, v := range labels {
		annotations[k] = v
	}
	return writeLayout(o.out, img, annotations)
}

// rootfs is the image's root filesystem.
func rootfs(o options) (tree, error) {
	root := tree{}
	for _, d := range []string{"/etc", "/proc", "/sys", "/dev", "/run", "/var/lib/cedana", "/etc/cedana"} {
		root.dir(d, 0o755)
	}
	root.dir("/tmp", 0o1777)
	if err := root.file("/usr/bin/cedana", o.binary); err != nil {
		return nil, fmt.Errorf("the cedana binary (just build): %w", err)
	}
	if _, err := os.Stat(filepath.Join(o.criu, "bin", "criu")); err != nil {
		return nil, fmt.Errorf("CRIU's prefix %s (just deps installs it): %w", o.criu, err)
	}
	if err := root.copyDir(o.criu, o.criu); err != nil {
		return nil, err
	}
	if err := root.withLibraries(o.tools...); err != nil {
		return nil, err
	}
	// iptables loads its match and target modules at run time; some load libraries of their own.
	modules, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/xtables/*.so")
	if len(modules) == 0 {
		return nil, fmt.Errorf("no iptables modules in /usr/lib/x86_64-linux-gnu/xtables: install iptables (just deps)")
	}
	if err := root.withLibraries(modules...); err != nil {
		return nil, err
	}
	return root, nil
}

// writeLayout writes img as an OCI image layout tarball at out, its index entry annotated.
func writeLayout(out string, img v1.Image, annotations map[string]string) error {
	dir, err := os.MkdirTemp("", "cedana-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(annotations),
		layout.WithPlatform(v1.Platform{Architecture: "amd64", OS: "linux"})); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarDir(tmp, dir); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// tarDir writes the files under dir to a tar at out, sorted, with fixed dates and owners.
func tarDir(out, dir string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range names {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Size: fi.Size()}
		if fi.IsDir() {
			h.Name, h.Mode, h.Typeflag, h.Size = h.Name+"/", 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
