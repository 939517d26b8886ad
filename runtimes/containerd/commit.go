package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/rootfs"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cedana/cedana/errs"
)

// commitImage commits container info's writable layer as image ref, as `nerdctl commit` does:
// containerd's differ compares the container's snapshot with its parent and stores the change as
// a gzip layer in the content store; a config (the base image's, with the layer's diff ID and a
// history entry added) and a manifest (the base image's layers plus the new one) are written
// beside it, and ref is created or moved to the new manifest, then unpacked into the container's
// snapshotter so that `restore containerd --image ref` can use it at once. The caller keeps the
// container's processes still (paused or frozen) while it runs.
func commitImage(ctx context.Context, c *client.Client, info containerRecord, id, ref string) (_ ocispec.Descriptor, err error) {
	// A lease keeps the new blobs from containerd's garbage collector until the image holds them.
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("lease for the commit: %w", err)
	}
	defer func() { _ = done(context.WithoutCancel(ctx)) }()
	base, err := c.GetImage(ctx, info.Image)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("the image of container %s (%s): %w", id, info.Image, err)
	}
	cs := c.ContentStore()
	platform := platforms.Default()
	manifest, err := images.Manifest(ctx, cs, base.Target(), platform)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest of %s: %w", info.Image, err)
	}
	rawConfig, err := content.ReadBlob(ctx, cs, manifest.Config)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config of %s: %w", info.Image, err)
	}
	var config ocispec.Image
	if err := json.Unmarshal(rawConfig, &config); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config of %s: %w", info.Image, err)
	}
	layer, err := rootfs.CreateDiff(ctx, info.SnapshotKey, c.SnapshotService(info.Snapshotter), c.DiffService(),
		diff.WithMediaType(ocispec.MediaTypeImageLayerGzip), diff.WithReference("cedana-commit-"+id))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("diff container %s's writable layer: %w", id, err)
	}
	layerInfo, err := cs.Info(ctx, layer.Digest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("the new layer: %w", err)
	}
	diffID, err := digest.Parse(layerInfo.Labels["containerd.io/uncompressed"])
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("the new layer has no uncompressed digest: %w", err)
	}
	now := time.Now().UTC()
	config.Created = &now
	config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, diffID)
	config.History = append(config.History, ocispec.History{Created: &now, CreatedBy: "cedana dump containerd --image", Comment: "container " + id})
	configDesc, err := writeJSONBlob(ctx, cs, ocispec.MediaTypeImageConfig, config, nil)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	manifest.MediaType = ocispec.MediaTypeImageManifest
	manifest.Config = configDesc
	manifest.Layers = append(manifest.Layers, layer)
	labels := map[string]string{"containerd.io/gc.ref.content.config": configDesc.Digest.String()}
	for i, l := range manifest.Layers {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Digest.String()
	}
	manifestDesc, err := writeJSONBlob(ctx, cs, ocispec.MediaTypeImageManifest, manifest, labels)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	record := images.Image{Name: ref, Target: manifestDesc}
	is := c.ImageService()
	if _, err := is.Create(ctx, record); errdefs.IsAlreadyExists(err) {
		_, err = is.Update(ctx, record)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("move image %s to the commit: %w", ref, err)
		}
	} else if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("create image %s: %w", ref, err)
	}
	if err := client.NewImage(c, record).Unpack(ctx, info.Snapshotter); err != nil {
		return ocispec.Descriptor{}, errs.Precondition("committed image %s, but could not unpack it: %w", ref, err)
	}
	return manifestDesc, nil
}

// writeJSONBlob stores v as a blob of mediaType in the content store.
func writeJSONBlob(ctx context.Context, cs content.Store, mediaType string, v any, labels map[string]string) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(ctx, cs, desc.Digest.String(), bytes.NewReader(data), desc, content.WithLabels(labels)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("store the new image's %s: %w", mediaType, err)
	}
	return desc, nil
}
