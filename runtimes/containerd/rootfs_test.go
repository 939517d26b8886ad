package containerd

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/testutil"
)

// TestLayerRoundTrip: an overlayfs upper directory (files, a hard link, a symlink, a whiteout,
// an opaque directory) comes back the same from writeLayer then applyLayer.
func TestLayerRoundTrip(t *testing.T) {
	testutil.RequireRoot(t) // whiteouts (character devices) and trusted xattrs need root
	upper := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(upper, "tmp", "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(upper, "tmp", "note"), []byte("hello\n"), 0o640))
	require.NoError(t, os.Link(filepath.Join(upper, "tmp", "note"), filepath.Join(upper, "tmp", "hard")))
	require.NoError(t, os.Symlink("note", filepath.Join(upper, "tmp", "link")))
	require.NoError(t, unix.Mknod(filepath.Join(upper, "tmp", "deleted"), unix.S_IFCHR|0o600, 0))
	require.NoError(t, unix.Setxattr(filepath.Join(upper, "tmp", "sub"), opaqueXattr, []byte("y"), 0))

	layer := filepath.Join(t.TempDir(), "layer.tar")
	require.NoError(t, writeLayer(context.Background(), upper, layer))
	fresh := t.TempDir()
	require.NoError(t, applyLayer(context.Background(), layer, fresh))
	assertUpper(t, fresh)
	hard, err := os.Stat(filepath.Join(fresh, "tmp", "hard"))
	require.NoError(t, err)
	note, err := os.Stat(filepath.Join(fresh, "tmp", "note"))
	require.NoError(t, err)
	assert.True(t, os.SameFile(hard, note), "the hard link is one file again")
}

// TestApplyLayerOfEarlierCheckpoints: a layer as cedana wrote it before it used containerd's
// diff (whiteouts as character devices, the opaque mark as an extended attribute of the
// directory's entry, a symlink) is applied the same.
func TestApplyLayerOfEarlierCheckpoints(t *testing.T) {
	testutil.RequireRoot(t) // whiteouts (character devices) and trusted xattrs need root
	layer := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(layer)
	require.NoError(t, err)
	tw := tar.NewWriter(f)
	for _, h := range []tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "tmp/deleted", Typeflag: tar.TypeChar, Mode: 0o600},
		{Name: "tmp/link", Typeflag: tar.TypeSymlink, Linkname: "note", Mode: 0o777},
		{Name: "tmp/note", Typeflag: tar.TypeReg, Mode: 0o640, Size: 6},
		{
			Name: "tmp/sub/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr." + opaqueXattr: "y"},
		},
	} {
		require.NoError(t, tw.WriteHeader(&h))
		if h.Size > 0 {
			_, err := tw.Write([]byte("hello\n"))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, f.Close())
	fresh := t.TempDir()
	require.NoError(t, applyLayer(context.Background(), layer, fresh))
	assertUpper(t, fresh)
}

// assertUpper checks the upper directory both layer tests make: tmp/note, tmp/link to it, the
// whiteout tmp/deleted and the opaque directory tmp/sub.
func assertUpper(t *testing.T, dir string) {
	t.Helper()
	fresh := dir
	data, err := os.ReadFile(filepath.Join(fresh, "tmp", "note"))
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(data))
	info, err := os.Stat(filepath.Join(fresh, "tmp", "note"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), info.Mode().Perm())
	target, err := os.Readlink(filepath.Join(fresh, "tmp", "link"))
	require.NoError(t, err)
	assert.Equal(t, "note", target)
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(filepath.Join(fresh, "tmp", "deleted"), &st))
	assert.Equal(t, uint32(unix.S_IFCHR), st.Mode&unix.S_IFMT, "the whiteout is a character device")
	assert.Zero(t, st.Rdev)
	var v [4]byte
	n, err := unix.Getxattr(filepath.Join(fresh, "tmp", "sub"), opaqueXattr, v[:])
	require.NoError(t, err)
	assert.Equal(t, "y", string(v[:n]))
}

// TestApplyLayerRefusesEscapes: entries that leave the directory, directly or through a symlink,
// and entry types cedana does not restore are refused.
func TestApplyLayerRefusesEscapes(t *testing.T) {
	tests := []struct {
		name    string
		entries []tar.Header
	}{
		{"dot-dot", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg}}},
		{"absolute", []tar.Header{{Name: "/etc/evil", Typeflag: tar.TypeReg}}},
		{"through a symlink", []tar.Header{{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/"}, {Name: "out/evil", Typeflag: tar.TypeReg}}},
		{"block device", []tar.Header{{Name: "disk", Typeflag: tar.TypeBlock}}},
		{"hard link out", []tar.Header{{Name: "evil", Typeflag: tar.TypeLink, Linkname: "../x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layer := filepath.Join(t.TempDir(), "layer.tar")
			f, err := os.Create(layer)
			require.NoError(t, err)
			tw := tar.NewWriter(f)
			for _, h := range tt.entries {
				h.Mode = 0o644
				require.NoError(t, tw.WriteHeader(&h))
			}
			require.NoError(t, tw.Close())
			require.NoError(t, f.Close())
			outside := t.TempDir()
			dir := filepath.Join(outside, "upper")
			require.NoError(t, os.Mkdir(dir, 0o755))
			err = applyLayer(context.Background(), layer, dir)
			require.Error(t, err)
			assert.NoFileExists(t, filepath.Join(outside, "evil"))
			assert.True(t, errors.Is(err, errdefs.ErrInvalidArgument), "%v", err)
		})
	}
}

func TestWithDefaults(t *testing.T) {
	d := withDefaults(nil)
	assert.Equal(t, DefaultNamespace, d.Namespace)
	assert.Equal(t, DefaultAddress, d.Address)
	d = withDefaults(&daemonv1.ContainerdDetails{Namespace: "k8s.io", Address: "/x.sock"})
	assert.Equal(t, "k8s.io", d.Namespace)
	assert.Equal(t, "/x.sock", d.Address)
	assert.Equal(t, "/run/containerd/runc/k8s.io", runcRoot("k8s.io"))
}
