package checkpoint_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cedana/cedana/checkpoint"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

func sampleCheckpoint() *daemonv1.Checkpoint {
	return &daemonv1.Checkpoint{
		Name:          "dump-process-1",
		Path:          "/var/lib/cedana/checkpoints/dump-process-1",
		Type:          "process",
		Pid:           1234,
		Pids:          []int32{1234, 1240, 1300},
		Cmdline:       []string{"sleep", "100"},
		Hostname:      "host",
		Kernel:        "6.1.0",
		CriuVersion:   40101,
		CedanaVersion: "v0.0.0-test",
		CreatedAt:     timestamppb.Now(),
		SizeBytes:     4096,
		Options: &daemonv1.CriuOptions{
			LeaveRunning:   true,
			TcpEstablished: true,
			ShellJob:       true,
			External:       []string{"mnt[]:m"},
		},
		Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 1234}},
	}
}

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(strings.Repeat("x", size)), 0o644))
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := sampleCheckpoint()
	require.NoError(t, checkpoint.Write(dir, want))

	got, err := checkpoint.Read(dir)
	require.NoError(t, err)
	assert.True(t, proto.Equal(want, got), "round trip changed the checkpoint:\nwant %v\ngot  %v", want, got)
}

func TestWriteFileFormat(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, checkpoint.Write(dir, sampleCheckpoint()))

	path := filepath.Join(dir, checkpoint.MetadataFile)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.True(t, info.Mode().IsRegular())
	assert.Equal(t, os.FileMode(0o644), info.Mode().Perm())

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(data), "\n"), "the file ends with a newline")

	var fields map[string]any
	require.NoError(t, json.Unmarshal(data, &fields), "the file is JSON")
	for _, key := range []string{"name", "type", "pid", "pids", "criu_version", "cedana_version", "created_at", "size_bytes", "options"} {
		assert.Contains(t, fields, key, "snake_case key %s", key)
	}
	for _, key := range []string{"criuVersion", "cedanaVersion", "createdAt", "sizeBytes"} {
		assert.NotContains(t, fields, key, "no camelCase key %s", key)
	}
	opts, ok := fields["options"].(map[string]any)
	require.True(t, ok)
	assert.Contains(t, opts, "leave_running")
	assert.Contains(t, opts, "tcp_established")
	assert.Contains(t, opts, "shell_job")
}

func TestWriteLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, checkpoint.Write(dir, sampleCheckpoint()))
	// Overwriting goes through a temporary file too.
	require.NoError(t, checkpoint.Write(dir, sampleCheckpoint()))

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{checkpoint.MetadataFile}, names)
}

func TestWriteOverwrites(t *testing.T) {
	dir := t.TempDir()
	first := sampleCheckpoint()
	require.NoError(t, checkpoint.Write(dir, first))
	second := sampleCheckpoint()
	second.Name = "renamed"
	second.Pids = nil
	require.NoError(t, checkpoint.Write(dir, second))

	got, err := checkpoint.Read(dir)
	require.NoError(t, err)
	assert.Equal(t, "renamed", got.Name)
	assert.Empty(t, got.Pids)
}

func TestWriteMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	err := checkpoint.Write(dir, sampleCheckpoint())
	require.Error(t, err)
	assert.NoDirExists(t, dir)
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name     string
		content  *string // nil: no metadata file
		contains []string
	}{
		{name: "no metadata file", content: nil, contains: []string{"not a cedana checkpoint", checkpoint.MetadataFile}},
		{name: "garbage", content: ptr("this is not json"), contains: []string{"not a cedana checkpoint", "unreadable"}},
		{name: "truncated json", content: ptr(`{"name": "x"`), contains: []string{"not a cedana checkpoint"}},
		{name: "wrong field type", content: ptr(`{"pid": "not a number"}`), contains: []string{"not a cedana checkpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.content != nil {
				require.NoError(t, os.WriteFile(filepath.Join(dir, checkpoint.MetadataFile), []byte(*tt.content), 0o644))
			}
			ck, err := checkpoint.Read(dir)
			require.Error(t, err)
			assert.Nil(t, ck)
			assert.ErrorIs(t, err, checkpoint.ErrNotCheckpoint)
			assert.Contains(t, err.Error(), dir)
			for _, s := range tt.contains {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestReadMissingDirIsNotCheckpoint(t *testing.T) {
	_, err := checkpoint.Read(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorIs(t, err, checkpoint.ErrNotCheckpoint)
}

func TestReadIgnoresUnknownFields(t *testing.T) {
	dir := t.TempDir()
	data := `{"name": "n", "type": "runc", "some_future_field": {"a": 1}}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, checkpoint.MetadataFile), []byte(data), 0o644))
	ck, err := checkpoint.Read(dir)
	require.NoError(t, err)
	assert.Equal(t, "n", ck.Name)
	assert.Equal(t, "runc", ck.Type)
}

func TestReadMetadataIsDirectory(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, checkpoint.MetadataFile), 0o755))
	_, err := checkpoint.Read(dir)
	require.Error(t, err)
	assert.NotErrorIs(t, err, checkpoint.ErrNotCheckpoint, "an unreadable file is not reported as a missing one")
}

func TestSize(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]int
		want  int64
	}{
		{name: "empty", files: nil, want: 0},
		{name: "one file", files: map[string]int{"a.img": 10}, want: 10},
		{name: "several files", files: map[string]int{"a.img": 10, "b.img": 25, "empty": 0}, want: 35},
		{name: "nested", files: map[string]int{"a": 1, "sub/b": 2, "sub/deeper/c": 300}, want: 303},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, size := range tt.files {
				writeFile(t, filepath.Join(dir, name), size)
			}
			got, err := checkpoint.Size(dir)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSizeCountsOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.img"), 100)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "emptydir"), 0o755))
	// A symlink to a big file outside the directory is not counted.
	outside := filepath.Join(t.TempDir(), "big")
	writeFile(t, outside, 10000)
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "link")))

	got, err := checkpoint.Size(dir)
	require.NoError(t, err)
	assert.Equal(t, int64(100), got)
}

func TestSizeMissingDir(t *testing.T) {
	_, err := checkpoint.Size(filepath.Join(t.TempDir(), "missing"))
	assert.Error(t, err)
}

func TestDumpedPIDs(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		root  int32
		want  []int32
	}{
		{name: "empty dir", files: nil, root: 100, want: nil},
		{name: "no core images", files: []string{"dump.log", "pstree.img", "mm-100.img", "pagemap-100.img"}, root: 100, want: nil},
		{name: "root only", files: []string{"core-100.img", "mm-100.img"}, root: 100, want: []int32{100}},
		{
			name:  "root first then sorted",
			files: []string{"core-300.img", "core-100.img", "core-20.img", "core-1000.img", "core-150.img"},
			root:  100,
			want:  []int32{100, 20, 150, 300, 1000},
		},
		{
			name:  "root not the smallest",
			files: []string{"core-5.img", "core-7.img", "core-9.img"},
			root:  9,
			want:  []int32{9, 5, 7},
		},
		{
			name:  "non-numeric core names ignored",
			files: []string{"core-100.img", "core-abc.img", "core-.img", "core-12x.img", "core-101.img"},
			root:  100,
			want:  []int32{100, 101},
		},
		{
			name:  "other images ignored",
			files: []string{"core-100.img", "mm-200.img", "core-101.img.bak", "xcore-300.img"},
			root:  100,
			want:  []int32{100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range tt.files {
				writeFile(t, filepath.Join(dir, name), 1)
			}
			got := checkpoint.DumpedPIDs(dir, tt.root)
			if tt.want == nil {
				assert.Nil(t, got)
			} else {
				assert.Equal(t, tt.want, got)
			}
		})
	}
}

func TestDumpedPIDsMissingDir(t *testing.T) {
	assert.Nil(t, checkpoint.DumpedPIDs(filepath.Join(t.TempDir(), "missing"), 1))
}

func TestDumpedPIDsDirWithGlobMetacharacters(t *testing.T) {
	// Checkpoint names may hold '[', '*' and '?': only '/' and a leading '.' are refused.
	dir := filepath.Join(t.TempDir(), "ck[1]")
	for _, name := range []string{"core-10.img", "core-11.img"} {
		writeFile(t, filepath.Join(dir, name), 1)
	}
	got := checkpoint.DumpedPIDs(dir, 10)
	assert.Equal(t, []int32{10, 11}, got)
}

func ptr(s string) *string { return &s }

// TestCommit: Commit writes the same metadata file as Write, 0644, and leaves no temporary file
// beside the images, whose contents it does not touch.
func TestCommit(t *testing.T) {
	tests := []struct {
		name  string
		files []string // images already in the directory
	}{
		{name: "empty directory"},
		{name: "beside images", files: []string{"core-1.img", "pages-1.img", "dump.log"}},
		{name: "over an older checkpoint.json", files: []string{checkpoint.MetadataFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				writeFile(t, filepath.Join(dir, f), 10)
			}
			want := sampleCheckpoint()
			require.NoError(t, checkpoint.Commit(dir, want))
			got, err := checkpoint.Read(dir)
			require.NoError(t, err)
			assert.True(t, proto.Equal(want, got))
			info, err := os.Stat(filepath.Join(dir, checkpoint.MetadataFile))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o644), info.Mode().Perm())
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			for _, e := range entries {
				assert.False(t, strings.HasPrefix(e.Name(), "."), "temporary file %s left", e.Name())
			}
			for _, f := range tt.files {
				if f != checkpoint.MetadataFile {
					data, err := os.ReadFile(filepath.Join(dir, f))
					require.NoError(t, err)
					assert.Len(t, data, 10)
				}
			}
		})
	}
}

func TestCommitMissingDir(t *testing.T) {
	assert.Error(t, checkpoint.Commit(filepath.Join(t.TempDir(), "missing"), sampleCheckpoint()))
}
