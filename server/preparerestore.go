package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/k8s"
	"github.com/cedana/cedana/storage"
)

// maxPodManifest bounds what PrepareRestore reads of a pod checkpoint's manifest.
const maxPodManifest = 1 << 20

// PrepareRestore makes one container's entry of a pod checkpoint available as local images, for
// the Kubernetes runtime handler: it reads the manifest, checks the new container's image
// against the dumped one, fetches and unpacks the entry (into a temporary directory under the
// daemon's temp dir, which outlives the request and which the caller removes; a local directory
// entry is used in place), and lets the checkpoint's runtime (features.PodRestore) check the
// entry and apply its writable layer to the new container's rootfs. Every error names the pod
// checkpoint.
func (s *service) PrepareRestore(ctx context.Context, req *daemonv1.PrepareRestoreRequest) (*daemonv1.PrepareRestoreResponse, error) {
	if err := validatePrepareRestore(req); err != nil {
		return nil, err
	}
	resp, err := s.prepareRestore(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("pod checkpoint %s: %w", req.Path, err)
	}
	s.log.Info("prepared a pod container's restore", "path", req.Path, "container", req.Container,
		"dir", resp.Dir, "temporary", resp.Temporary)
	return resp, nil
}

func (s *service) prepareRestore(ctx context.Context, req *daemonv1.PrepareRestoreRequest) (_ *daemonv1.PrepareRestoreResponse, err error) {
	manifest, err := readPodManifest(ctx, s.env, req.Path)
	if err != nil {
		return nil, err
	}
	entry, err := podEntry(manifest, req.Container, req.Image)
	if err != nil {
		return nil, err
	}
	at, err := entryLocation(req.Path, entry)
	if err != nil {
		return nil, err
	}
	dir, temporary, err := adapters.FetchImages(ctx, s.env, nil, at, nil)
	if err != nil {
		return nil, fmt.Errorf("container %s's entry %s: %w", entry.Name, entry.Entry, err)
	}
	if temporary {
		defer func() {
			if err != nil {
				os.RemoveAll(dir)
			}
		}()
	}
	ck, err := checkpoint.Read(dir)
	if errors.Is(err, checkpoint.ErrNotCheckpoint) {
		return nil, errs.Invalid("container %s's entry %s: %w", entry.Name, entry.Entry, err)
	} else if err != nil {
		return nil, fmt.Errorf("container %s's entry %s: %w", entry.Name, entry.Entry, err)
	}
	prepare, ok := features.PodRestore.Lookup(ck.Type)
	if !ok {
		if _, err := features.PodRestore.Get(ck.Type); !features.DumpHandler.IsAvailable(ck.Type) {
			return nil, fmt.Errorf("container %s's entry %s: %w", entry.Name, entry.Entry, err)
		}
		return nil, errs.Invalid("container %s's entry %s is a %s checkpoint, which cannot be restored into a pod", entry.Name, entry.Entry, ck.Type)
	}
	if err := prepare(ctx, dir, req.Rootfs); err != nil {
		return nil, fmt.Errorf("container %s's entry %s: %w", entry.Name, entry.Entry, err)
	}
	return &daemonv1.PrepareRestoreResponse{Dir: dir, Temporary: temporary, Checkpoint: ck, Container: entry}, nil
}

// validatePrepareRestore requires an absolute local path or a valid s3:// URL, a container name,
// and an absolute rootfs when there is one.
func validatePrepareRestore(req *daemonv1.PrepareRestoreRequest) error {
	if err := noNUL(req); err != nil {
		return err
	}
	_, remote, err := storage.ParseURL(req.Path)
	switch {
	case req.Path == "":
		return errs.Invalid("no pod checkpoint: set path (the annotation %s) to its directory or s3:// URL", k8s.RestoreAnnotation)
	case err != nil:
		return errs.Invalid("pod checkpoint: %w", err)
	case !remote && !filepath.IsAbs(req.Path):
		return errs.Invalid("pod checkpoint %q is a relative path: give its absolute path or an s3:// URL", req.Path)
	}
	if req.Container == "" {
		return errs.Invalid("pod checkpoint %s: no container name: set container to the container's name in the pod", req.Path)
	}
	if req.Rootfs != "" && !filepath.IsAbs(req.Rootfs) {
		return errs.Invalid("rootfs %q is a relative path: give the new container's mounted root filesystem's absolute path", req.Rootfs)
	}
	return nil
}

// readPodManifest reads the pod checkpoint's manifest at path (a directory or an s3:// URL), of at
// most maxPodManifest bytes.
func readPodManifest(ctx context.Context, env *adapters.Env, path string) (*daemonv1.PodCheckpoint, error) {
	var src io.ReadCloser
	loc, remote, _ := storage.ParseURL(path)
	if remote {
		client, err := storage.New(env.S3)
		if err != nil {
			return nil, errs.Invalid("%w", err)
		}
		if src, _, err = client.Open(ctx, loc.Join(k8s.PodManifestFile)); err != nil {
			return nil, noSuchPodCheckpoint(err)
		}
	} else {
		f, err := os.Open(filepath.Join(path, k8s.PodManifestFile))
		if err != nil {
			return nil, noSuchPodCheckpoint(err)
		}
		src = f
	}
	defer src.Close()
	data, err := io.ReadAll(io.LimitReader(src, maxPodManifest+1))
	if err != nil {
		return nil, errs.Precondition("read %s: %w", k8s.PodManifestFile, err)
	}
	if len(data) > maxPodManifest {
		return nil, errs.Invalid("%s is larger than %d bytes: it is no pod checkpoint's manifest", k8s.PodManifestFile, maxPodManifest)
	}
	var manifest daemonv1.PodCheckpoint
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &manifest); err != nil {
		return nil, errs.Invalid("%s is not a pod checkpoint's manifest: %w", k8s.PodManifestFile, err)
	}
	return &manifest, nil
}

// noSuchPodCheckpoint says that a pod checkpoint's manifest could not be opened: not found (with
// its kind), or another failure with its own.
func noSuchPodCheckpoint(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errs.NotFound("no such checkpoint (it has no %s): check the annotation %s", k8s.PodManifestFile, k8s.RestoreAnnotation)
	}
	var perr *fs.PathError
	if errors.As(err, &perr) {
		return errs.Precondition("read %s: %w", k8s.PodManifestFile, perr.Err)
	}
	if errdefs.IsNotFound(err) {
		return errs.NotFound("no such checkpoint (it has no %s): %w", k8s.PodManifestFile, err)
	}
	return err // storage's errors have their kinds and say what to fix
}

// podEntry is the manifest's entry for container, whose dumped image must be image (when both are
// known). Images are compared as references: "busybox" is "docker.io/library/busybox:latest".
func podEntry(manifest *daemonv1.PodCheckpoint, container, image string) (*daemonv1.PodContainer, error) {
	var names []string
	for _, c := range manifest.GetContainers() {
		names = append(names, c.GetName())
		if c.GetName() != container {
			continue
		}
		if image != "" && c.GetImage() != "" && normalImage(image) != normalImage(c.GetImage()) {
			return nil, errs.Precondition("container %s was dumped from image %s, but the new container's image is %s: create it from the dumped image",
				container, c.GetImage(), image)
		}
		return c, nil
	}
	slices.Sort(names)
	return nil, errs.NotFound("no entry for container %s (the checkpoint has: %s)", container, strings.Join(names, ", "))
}

// normalImage is ref in its normalized, fully qualified form, or ref itself when it does not parse.
func normalImage(ref string) string {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return ref
	}
	return named.String()
}

// entryLocation is where entry's checkpoint is: under the pod checkpoint's directory or prefix. An
// entry that is not a plain name is refused, and so is a missing local entry.
func entryLocation(path string, entry *daemonv1.PodContainer) (string, error) {
	name := entry.GetEntry()
	if name == "" || strings.ContainsAny(name, "/\\") || !filepath.IsLocal(name) {
		return "", errs.Invalid("container %s's entry %q is not a name inside the checkpoint", entry.GetName(), name)
	}
	if loc, remote, _ := storage.ParseURL(path); remote {
		return loc.Join(name).String(), nil
	}
	at := filepath.Join(path, name)
	if _, err := os.Stat(at); errors.Is(err, fs.ErrNotExist) {
		return "", errs.NotFound("container %s's entry %s does not exist", entry.GetName(), name)
	}
	return at, nil
}
