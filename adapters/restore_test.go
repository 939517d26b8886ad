package adapters_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// restoreCapture is a RestoreHandler that records what it was called with.
type restoreCapture struct {
	calls int
	env   *adapters.Env
	st    adapters.State
	req   *daemonv1.RestoreRequest
	err   error
	do    func(env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse)
}

func (c *restoreCapture) handle(_ context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
	c.calls++
	c.env, c.st = env, st
	c.req = proto.Clone(req).(*daemonv1.RestoreRequest)
	if c.do != nil {
		c.do(env, st, req, resp)
	}
	return c.err
}

func TestTimeRestore(t *testing.T) {
	errNext := errors.New("next failed")
	for _, nextErr := range []error{nil, errNext} {
		t.Run(errString(nextErr), func(t *testing.T) {
			next := &restoreCapture{err: nextErr, do: func(_ *adapters.Env, _ adapters.State, _ *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) {
				require.NotNil(t, resp.Stats, "stats exist before next runs")
				time.Sleep(20 * time.Millisecond)
			}}
			resp := &daemonv1.RestoreResponse{}
			err := adapters.TimeRestore(next.handle)(context.Background(), testEnv(), testState(), &daemonv1.RestoreRequest{}, resp)
			assert.ErrorIs(t, err, nextErr)
			require.NotNil(t, resp.Stats)
			require.NotNil(t, resp.Stats.Total)
			assert.GreaterOrEqual(t, resp.Stats.Total.AsDuration(), 20*time.Millisecond)
		})
	}
}

// TestRestoreChecks: ValidateRestoreRequest looks at nothing but the request; LocateCheckpoint
// finds the checkpoint it names.
func TestRestoreChecks(t *testing.T) {
	base := t.TempDir()
	ckDir := filepath.Join(base, "ck")
	require.NoError(t, os.Mkdir(ckDir, 0o755))
	regular := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(regular, []byte("x"), 0o644))
	validate, locate := adapters.ValidateRestoreRequest, adapters.LocateCheckpoint

	tests := []struct {
		name     string
		adapter  adapters.Adapter[adapters.RestoreHandler]
		path     string
		wantErr  error
		wantPath string
		msg      string
	}{
		{name: "a path, not looked at", adapter: validate, path: "/nonexistent/ck", wantPath: "/nonexistent/ck"},
		{name: "relative path, left to LocateCheckpoint", adapter: validate, path: "ck", wantPath: "ck"},
		{name: "s3 URL", adapter: validate, path: "s3://bucket/ck.tar.zst", wantPath: "s3://bucket/ck.tar.zst"},
		{name: "empty path", adapter: validate, path: "", wantErr: errdefs.ErrInvalidArgument, msg: "--path"},
		{name: "NUL byte", adapter: validate, path: "/tmp/a\x00b", wantErr: errdefs.ErrInvalidArgument, msg: "NUL"},
		{name: "s3 URL without bucket", adapter: validate, path: "s3://", wantErr: errdefs.ErrInvalidArgument},
		{name: "located", adapter: locate, path: ckDir, wantPath: ckDir},
		{name: "located, cleaned", adapter: locate, path: ckDir + "/./", wantPath: ckDir},
		{name: "missing", adapter: locate, path: filepath.Join(base, "missing"), wantErr: errdefs.ErrNotFound, msg: "does not exist"},
		{name: "regular file (an archive)", adapter: locate, path: regular, wantPath: regular},
		{name: "s3 URL, not looked up", adapter: locate, path: "s3://bucket/ck.tar.zst", wantPath: "s3://bucket/ck.tar.zst"},
		{name: "a device", adapter: locate, path: "/dev/null", wantErr: errdefs.ErrInvalidArgument, msg: "neither a checkpoint directory nor a checkpoint archive"},
		{name: "under a regular file", adapter: locate, path: filepath.Join(regular, "sub"), wantErr: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &restoreCapture{}
			req := &daemonv1.RestoreRequest{Path: tt.path}
			err := tt.adapter(next.handle)(context.Background(), testEnv(), testState(), req, &daemonv1.RestoreResponse{})
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, 1, next.calls)
				assert.Equal(t, tt.wantPath, next.req.Path)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.wantErr)
			if tt.msg != "" {
				assert.Contains(t, err.Error(), tt.msg)
			}
			assert.Zero(t, next.calls)
		})
	}
}

func TestValidateRestoreRequestFills(t *testing.T) {
	next := &restoreCapture{}
	req := &daemonv1.RestoreRequest{Path: "/ck"}
	require.NoError(t, adapters.ValidateRestoreRequest(next.handle)(context.Background(), testEnv(), testState(), req, &daemonv1.RestoreResponse{}))
	assert.NotNil(t, next.req.Criu, "criu options filled")
	assert.NotNil(t, next.req.Details, "details filled")
}

func TestLocateCheckpointRelativePath(t *testing.T) {
	base := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(base, "ck"), 0o755))
	t.Chdir(base)
	// The temporary directory may be behind a symlink: compare with what the process sees.
	wd, err := os.Getwd()
	require.NoError(t, err)

	next := &restoreCapture{}
	req := &daemonv1.RestoreRequest{Path: "ck"}
	require.NoError(t, adapters.LocateCheckpoint(next.handle)(context.Background(), testEnv(), testState(), req, &daemonv1.RestoreResponse{}))
	assert.Equal(t, filepath.Join(wd, "ck"), req.Path)
	assert.True(t, filepath.IsAbs(next.req.Path))
	assert.Equal(t, req.Path, next.req.Path)
}

func TestValidateRestoreRequestKeepsOptions(t *testing.T) {
	criu := &daemonv1.CriuOptions{TcpEstablished: true}
	details := &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 3}}
	req := &daemonv1.RestoreRequest{Path: t.TempDir(), Criu: criu, Details: details}
	require.NoError(t, adapters.ValidateRestoreRequest((&restoreCapture{}).handle)(context.Background(), testEnv(), testState(), req, &daemonv1.RestoreResponse{}))
	assert.Same(t, criu, req.Criu)
	assert.Same(t, details, req.Details)
}

// writeCheckpoint makes a checkpoint directory holding ck's metadata.
func writeCheckpoint(t *testing.T, ck *daemonv1.Checkpoint) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, checkpoint.Write(dir, ck))
	return dir
}

func TestReadCheckpointMetadataNoMetadata(t *testing.T) {
	next := &restoreCapture{}
	req := &daemonv1.RestoreRequest{Path: t.TempDir(), Criu: &daemonv1.CriuOptions{}}
	err := adapters.ReadCheckpointMetadata(next.handle)(context.Background(), testEnv(), testState(), req, &daemonv1.RestoreResponse{})
	require.Error(t, err)
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.ErrorIs(t, err, checkpoint.ErrNotCheckpoint)
	assert.Contains(t, err.Error(), checkpoint.MetadataFile)
	assert.Zero(t, next.calls)
}

func TestReadCheckpointMetadataGarbage(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, checkpoint.MetadataFile), []byte("{not json"), 0o644))
	next := &restoreCapture{}
	err := adapters.ReadCheckpointMetadata(next.handle)(context.Background(), testEnv(), testState(),
		&daemonv1.RestoreRequest{Path: dir, Criu: &daemonv1.CriuOptions{}}, &daemonv1.RestoreResponse{})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.Zero(t, next.calls)
}

func TestReadCheckpointMetadataType(t *testing.T) {
	tests := []struct {
		name     string
		reqType  string
		wantType string
		wantErr  error
	}{
		{name: "taken from metadata when empty", reqType: "", wantType: "process"},
		{name: "same type", reqType: "process", wantType: "process"},
		{name: "different type", reqType: "runc", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeCheckpoint(t, &daemonv1.Checkpoint{Name: "ck", Type: "process", Pid: 10})
			next := &restoreCapture{}
			req := &daemonv1.RestoreRequest{Path: dir, Type: tt.reqType, Criu: &daemonv1.CriuOptions{}}
			resp := &daemonv1.RestoreResponse{}
			outer := testState()
			err := adapters.ReadCheckpointMetadata(next.handle)(context.Background(), testEnv(), outer, req, resp)
			if tt.wantErr != nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Contains(t, err.Error(), "process")
				assert.Contains(t, err.Error(), "runc")
				assert.Contains(t, err.Error(), "cedana restore process", "the message says which command to use")
				assert.Zero(t, next.calls)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantType, req.Type)
			require.Equal(t, 1, next.calls)
			assert.Equal(t, dir, next.st.ImageDir, "next sees st.ImageDir")
			assert.Empty(t, outer.ImageDir)
			require.NotNil(t, resp.Checkpoint)
			assert.Equal(t, "ck", resp.Checkpoint.Name)
			assert.Equal(t, int32(10), resp.Checkpoint.Pid)
		})
	}
}

func TestReadCheckpointMetadataMergesOptions(t *testing.T) {
	tests := []struct {
		name   string
		dumped *daemonv1.CriuOptions
		req    *daemonv1.CriuOptions
		want   *daemonv1.CriuOptions
	}{
		{
			name:   "no dumped options",
			dumped: nil,
			req:    &daemonv1.CriuOptions{TcpEstablished: true},
			want:   &daemonv1.CriuOptions{TcpEstablished: true},
		},
		{
			name:   "dumped options turned on",
			dumped: &daemonv1.CriuOptions{ShellJob: true, TcpEstablished: true, FileLocks: true, External: []string{"mnt[a]:b", "mnt[c]:d"}},
			req:    &daemonv1.CriuOptions{},
			want:   &daemonv1.CriuOptions{ShellJob: true, TcpEstablished: true, FileLocks: true, External: []string{"mnt[a]:b", "mnt[c]:d"}},
		},
		{
			name:   "request's own options kept, externals not duplicated",
			dumped: &daemonv1.CriuOptions{ShellJob: true, External: []string{"mnt[a]:b", "mnt[c]:d"}},
			req:    &daemonv1.CriuOptions{FileLocks: true, External: []string{"mnt[c]:d", "mnt[e]:f"}},
			want:   &daemonv1.CriuOptions{ShellJob: true, FileLocks: true, External: []string{"mnt[c]:d", "mnt[e]:f", "mnt[a]:b"}},
		},
		{
			name:   "dump-only options not carried over",
			dumped: &daemonv1.CriuOptions{LeaveRunning: true, LinkRemap: true},
			req:    &daemonv1.CriuOptions{},
			want:   &daemonv1.CriuOptions{},
		},
		{
			name:   "a dumped false does not turn off a requested option",
			dumped: &daemonv1.CriuOptions{},
			req:    &daemonv1.CriuOptions{ShellJob: true, TcpEstablished: true, FileLocks: true},
			want:   &daemonv1.CriuOptions{ShellJob: true, TcpEstablished: true, FileLocks: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeCheckpoint(t, &daemonv1.Checkpoint{Name: "ck", Type: "process", Options: tt.dumped})
			next := &restoreCapture{}
			req := &daemonv1.RestoreRequest{Path: dir, Criu: tt.req}
			require.NoError(t, adapters.ReadCheckpointMetadata(next.handle)(context.Background(), testEnv(), testState(), req, &daemonv1.RestoreResponse{}))
			assert.True(t, proto.Equal(tt.want, req.Criu), "want %v, got %v", tt.want, req.Criu)
			assert.True(t, proto.Equal(tt.want, next.req.Criu), "next sees the merged options")
		})
	}
}

// TestRestoreChain runs the daemon's common restore adapters in their order, with a fake restore.
func TestRestoreChain(t *testing.T) {
	dir := writeCheckpoint(t, &daemonv1.Checkpoint{Name: "ck", Type: "process", Pid: 1, Options: &daemonv1.CriuOptions{ShellJob: true}})
	restore := &restoreCapture{do: func(_ *adapters.Env, _ adapters.State, _ *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) {
		resp.Pid = 4321
	}}
	h := adapters.RestoreHandler(restore.handle).With(adapters.TimeRestore, adapters.ValidateRestoreRequest, adapters.LocateCheckpoint, adapters.ReadCheckpointMetadata)
	req := &daemonv1.RestoreRequest{Path: dir}
	resp := &daemonv1.RestoreResponse{}
	require.NoError(t, h(context.Background(), testEnv(), testState(), req, resp))
	assert.Equal(t, int32(4321), resp.Pid)
	assert.Equal(t, "process", req.Type)
	assert.True(t, req.Criu.ShellJob)
	assert.Equal(t, dir, restore.st.ImageDir)
	require.NotNil(t, resp.Stats)
	assert.NotNil(t, resp.Stats.Total)
}
