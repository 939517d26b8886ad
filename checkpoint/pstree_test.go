package checkpoint_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/checkpoint-restore/go-criu/v8/crit"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/pstree"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/checkpoint"
)

// encodeImage writes an image as CRIU does (go-criu's encoder) and returns its bytes.
func encodeImage(t *testing.T, magic string, entries ...proto.Message) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.img")
	f, err := os.Create(path)
	require.NoError(t, err)
	img := &crit.CriuImage{Magic: magic}
	for _, e := range entries {
		img.Entries = append(img.Entries, &crit.CriuEntry{Message: e})
	}
	require.NoError(t, crit.New(nil, f, "", false, false).Encode(img))
	require.NoError(t, f.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

// proc is a pstree entry of pid with threads.
func proc(pid, ppid uint32, threads ...uint32) proto.Message {
	return &pstree.PstreeEntry{Pid: &pid, Ppid: &ppid, Pgid: &pid, Sid: &pid, Threads: threads}
}

// TestTreePIDs: the processes of a pstree image, root first then in order, without threads;
// anything but a pstree image of at least one process is an error.
func TestTreePIDs(t *testing.T) {
	tests := []struct {
		name    string
		img     []byte
		want    []int32
		wantErr string
	}{
		{name: "root only", img: encodeImage(t, "PSTREE", proc(100, 1, 100)), want: []int32{100}},
		{
			name: "root first, threads left out",
			img:  encodeImage(t, "PSTREE", proc(100, 1, 100, 101, 102), proc(300, 100, 300), proc(120, 100, 120, 121)),
			want: []int32{100, 120, 300},
		},
		{name: "root not the smallest", img: encodeImage(t, "PSTREE", proc(9, 1, 9), proc(7, 9, 7), proc(5, 9, 5)), want: []int32{9, 5, 7}},
		{name: "no process", img: encodeImage(t, "PSTREE"), wantErr: "lists no process"},
		{name: "another image", img: encodeImage(t, "FS"), wantErr: "not PSTREE"},
		{name: "garbage", img: []byte("not an image at all"), wantErr: "decode pstree.img"},
		{name: "empty", img: nil, wantErr: "decode pstree.img"},
		{name: "too large", img: make([]byte, 16<<20+1), wantErr: "larger than 16 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkpoint.TreePIDs(bytes.NewReader(tt.img))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestDumpedPIDsFromPstree: a directory with a pstree image lists its processes (not the
// threads' core images); with a broken one, the core images.
func TestDumpedPIDsFromPstree(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"core-100.img", "core-101.img", "core-120.img"} {
		writeFile(t, filepath.Join(dir, name), 1)
	}
	img := encodeImage(t, "PSTREE", proc(100, 1, 100, 101), proc(120, 100, 120))
	require.NoError(t, os.WriteFile(filepath.Join(dir, checkpoint.PstreeImage), img, 0o600))
	assert.Equal(t, []int32{100, 120}, checkpoint.DumpedPIDs(dir, 100))

	require.NoError(t, os.WriteFile(filepath.Join(dir, checkpoint.PstreeImage), []byte("x"), 0o600))
	assert.Equal(t, []int32{100, 101, 120}, checkpoint.DumpedPIDs(dir, 100))
}
