package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

func TestValidatePrepareRestore(t *testing.T) {
	tests := []struct {
		name string
		req  *daemonv1.PrepareRestoreRequest
		err  string
	}{
		{"local", &daemonv1.PrepareRestoreRequest{Path: "/ck/pod", Container: "app", Rootfs: "/b/rootfs"}, ""},
		{"s3", &daemonv1.PrepareRestoreRequest{Path: "s3://bucket/pods/p1", Container: "app"}, ""},
		{"no path", &daemonv1.PrepareRestoreRequest{Container: "app"}, "no pod checkpoint"},
		{"relative", &daemonv1.PrepareRestoreRequest{Path: "ck/pod", Container: "app"}, "relative path"},
		{"bad url", &daemonv1.PrepareRestoreRequest{Path: "s3:///x", Container: "app"}, "no bucket"},
		{"no container", &daemonv1.PrepareRestoreRequest{Path: "/ck/pod"}, "no container name"},
		{"relative rootfs", &daemonv1.PrepareRestoreRequest{Path: "/ck/pod", Container: "app", Rootfs: "rootfs"}, "relative path"},
		{"NUL", &daemonv1.PrepareRestoreRequest{Path: "/ck/\x00", Container: "app"}, "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validatePrepareRestore(tt.req)
			if tt.err == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
			assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
		})
	}
}

func TestPodEntry(t *testing.T) {
	manifest := &daemonv1.PodCheckpoint{Containers: []*daemonv1.PodContainer{
		{Name: "web", Image: "nginx:1", Entry: "web"},
		{Name: "app", Image: "docker.io/library/app:2", Entry: "app.tar.zst"},
	}}
	e, err := podEntry(manifest, "app", "app:2")
	require.NoError(t, err, "images compare as normalized references")
	assert.Equal(t, "app.tar.zst", e.Entry)
	_, err = podEntry(manifest, "web", "")
	require.NoError(t, err, "no image: not checked")

	_, err = podEntry(manifest, "db", "x")
	require.ErrorIs(t, err, errdefs.ErrNotFound)
	assert.ErrorContains(t, err, "no entry for container db (the checkpoint has: app, web)")

	_, err = podEntry(manifest, "web", "nginx:2")
	require.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
	assert.ErrorContains(t, err, "dumped from image nginx:1, but the new container's image is nginx:2")
}

func TestEntryLocation(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "app"), 0o755))
	at, err := entryLocation(dir, &daemonv1.PodContainer{Name: "app", Entry: "app"})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "app"), at)
	at, err = entryLocation("s3://bkt/pods/p1/", &daemonv1.PodContainer{Name: "app", Entry: "app.tar.zst"})
	require.NoError(t, err)
	assert.Equal(t, "s3://bkt/pods/p1/app.tar.zst", at)
	_, err = entryLocation(dir, &daemonv1.PodContainer{Name: "web", Entry: "web"})
	assert.ErrorIs(t, err, errdefs.ErrNotFound)
	for _, bad := range []string{"", "../x", "a/b", "/etc", ".."} {
		_, err = entryLocation(dir, &daemonv1.PodContainer{Name: "app", Entry: bad})
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument, bad)
	}
}

func TestReadPodManifest(t *testing.T) {
	env := &adapters.Env{}
	_, err := readPodManifest(context.Background(), env, filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, errdefs.ErrNotFound)
	assert.ErrorContains(t, err, "no such checkpoint")

	dir := t.TempDir()
	want := &daemonv1.PodCheckpoint{Name: "p", Containers: []*daemonv1.PodContainer{{Name: "app", Entry: "app"}}}
	data, err := protojson.Marshal(want)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pod.json"), data, 0o600))
	got, err := readPodManifest(context.Background(), env, dir)
	require.NoError(t, err)
	assert.Equal(t, "app", got.Containers[0].Entry)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "pod.json"), []byte("{not json"), 0o600))
	_, err = readPodManifest(context.Background(), env, dir)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pod.json"), []byte(strings.Repeat(" ", maxPodManifest+1)), 0o600))
	_, err = readPodManifest(context.Background(), env, dir)
	assert.ErrorContains(t, err, "larger than")
}
