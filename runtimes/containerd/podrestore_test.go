package containerd

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUpperDirOf: the topmost mount at the rootfs must be an overlayfs with an upper directory.
func TestUpperDirOf(t *testing.T) {
	overlay := &mountinfo.Info{FSType: "overlay", VFSOptions: "rw,lowerdir=/l1:/l2,upperdir=/snap/5/fs,workdir=/snap/5/work"}
	tests := []struct {
		name   string
		mounts []*mountinfo.Info
		want   string
		err    string
	}{
		{"overlay", []*mountinfo.Info{overlay}, "/snap/5/fs", ""},
		{"topmost wins", []*mountinfo.Info{{FSType: "tmpfs"}, overlay}, "/snap/5/fs", ""},
		{"not mounted", nil, "", "is not a mount point"},
		{"not overlay", []*mountinfo.Info{overlay, {FSType: "ext4"}}, "", "is mounted as ext4, not overlayfs"},
		{"read-only", []*mountinfo.Info{{FSType: "overlay", VFSOptions: "ro,lowerdir=/a:/b"}}, "", "no upper directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := upperDirOf("/b/rootfs", tt.mounts)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestPreparePodRestoreChecksEntry: an entry without the containerd spec or the writable layer is
// refused, naming the missing file and the fix.
func TestPreparePodRestoreChecksEntry(t *testing.T) {
	dir := t.TempDir()
	err := PreparePodRestore(context.Background(), dir, "")
	require.ErrorContains(t, err, SpecFile)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	require.NoError(t, os.WriteFile(filepath.Join(dir, SpecFile), []byte("{}"), 0o600))
	err = PreparePodRestore(context.Background(), dir, "")
	require.ErrorContains(t, err, "--rootfs")
	require.NoError(t, os.WriteFile(filepath.Join(dir, RootfsFile), nil, 0o600))
	require.NoError(t, PreparePodRestore(context.Background(), dir, ""))
	err = PreparePodRestore(context.Background(), dir, t.TempDir())
	require.ErrorContains(t, err, "not a mount point")
}
