package adapters_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
	"github.com/cedana/cedana/version"
)

// dumpCapture is a DumpHandler that records what it was called with.
type dumpCapture struct {
	calls  int
	env    *adapters.Env
	st     adapters.State
	req    *daemonv1.DumpRequest
	dumped adapters.Dumped
	err    error
	do     func(env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) error
}

func (c *dumpCapture) handle(_ context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
	c.calls++
	c.env, c.st = env, st
	c.req = proto.Clone(req).(*daemonv1.DumpRequest)
	if c.do != nil {
		if err := c.do(env, st, req, resp); err != nil {
			return c.dumped, err
		}
	}
	return c.dumped, c.err
}

// dumpErr is the error of a dump handler's results.
func dumpErr(_ adapters.Dumped, err error) error { return err }

func TestTimeDump(t *testing.T) {
	errNext := errors.New("next failed")
	for _, nextErr := range []error{nil, errNext} {
		t.Run(errString(nextErr), func(t *testing.T) {
			next := &dumpCapture{err: nextErr, do: func(_ *adapters.Env, _ adapters.State, _ *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) error {
				require.NotNil(t, resp.Stats, "stats exist before next runs")
				time.Sleep(20 * time.Millisecond)
				return nil
			}}
			resp := &daemonv1.DumpResponse{}
			_, err := adapters.TimeDump(next.handle)(context.Background(), testEnv(), testState(), &daemonv1.DumpRequest{}, resp)
			assert.ErrorIs(t, err, nextErr)
			require.NotNil(t, resp.Stats)
			require.NotNil(t, resp.Stats.Total)
			assert.GreaterOrEqual(t, resp.Stats.Total.AsDuration(), 20*time.Millisecond)
		})
	}
}

func TestTimeDumpKeepsExistingStats(t *testing.T) {
	stats := &daemonv1.Stats{}
	resp := &daemonv1.DumpResponse{Stats: stats}
	require.NoError(t, dumpErr(adapters.TimeDump((&dumpCapture{}).handle)(context.Background(), testEnv(), testState(), &daemonv1.DumpRequest{}, resp)))
	assert.Same(t, stats, resp.Stats)
	assert.NotNil(t, stats.Total)
}

func TestFillDumpDefaults(t *testing.T) {
	nameRE := regexp.MustCompile(`^dump-process-\d+$`)
	env, st := testEnv(), testState()
	env.CheckpointDir = "/var/lib/cedana/checkpoints"

	t.Run("empty request", func(t *testing.T) {
		next := &dumpCapture{}
		req := &daemonv1.DumpRequest{Type: "process"}
		require.NoError(t, dumpErr(adapters.FillDumpDefaults(next.handle)(context.Background(), env, st, req, &daemonv1.DumpResponse{})))
		require.Equal(t, 1, next.calls)
		assert.Equal(t, "/var/lib/cedana/checkpoints", req.Dir)
		assert.Regexp(t, nameRE, req.Name)
		assert.NotNil(t, req.Criu)
		assert.NotNil(t, req.Details)
		assert.True(t, proto.Equal(req, next.req), "next sees the filled request")
	})

	t.Run("explicit values kept", func(t *testing.T) {
		next := &dumpCapture{}
		criu := &daemonv1.CriuOptions{LeaveRunning: true}
		details := &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 42}}
		req := &daemonv1.DumpRequest{Type: "process", Dir: "/elsewhere", Name: "mine", Criu: criu, Details: details}
		require.NoError(t, dumpErr(adapters.FillDumpDefaults(next.handle)(context.Background(), env, st, req, &daemonv1.DumpResponse{})))
		assert.Equal(t, "/elsewhere", req.Dir)
		assert.Equal(t, "mine", req.Name)
		assert.Same(t, criu, req.Criu)
		assert.Same(t, details, req.Details)
		assert.True(t, req.Criu.LeaveRunning)
		assert.Equal(t, int32(42), req.Details.Process.Pid)
	})

	t.Run("names differ between requests", func(t *testing.T) {
		h := adapters.FillDumpDefaults((&dumpCapture{}).handle)
		a, b := &daemonv1.DumpRequest{Type: "process"}, &daemonv1.DumpRequest{Type: "process"}
		require.NoError(t, dumpErr(h(context.Background(), env, st, a, &daemonv1.DumpResponse{})))
		require.NoError(t, dumpErr(h(context.Background(), env, st, b, &daemonv1.DumpResponse{})))
		assert.NotEqual(t, a.Name, b.Name)
	})

	t.Run("s3 without compression is a tar", func(t *testing.T) {
		for _, tc := range []struct{ dir, codec, want string }{
			{"s3://bucket/ck", "", "tar"},
			{"s3://bucket/ck", "none", "tar"},
			{"s3://bucket/ck", "zstd", "zstd"},
			{"/ck", "none", "none"},
			{"/ck", "", "none"},
		} {
			req := &daemonv1.DumpRequest{Type: "process", Dir: tc.dir, Compression: tc.codec}
			resp := &daemonv1.DumpResponse{}
			require.NoError(t, dumpErr(adapters.FillDumpDefaults((&dumpCapture{}).handle)(context.Background(), env, st, req, resp)))
			assert.Equal(t, tc.want, req.Compression, "%s with %q", tc.dir, tc.codec)
			if tc.want == "tar" {
				assert.Equal(t, []string{adapters.RemoteTarNote}, resp.Stats.GetNotes())
			} else {
				assert.Empty(t, resp.Stats.GetNotes())
			}
		}
	})

	t.Run("error from next returned", func(t *testing.T) {
		errNext := errors.New("next failed")
		_, err := adapters.FillDumpDefaults((&dumpCapture{err: errNext}).handle)(context.Background(), env, st, &daemonv1.DumpRequest{Type: "process"}, &daemonv1.DumpResponse{})
		assert.ErrorIs(t, err, errNext)
	})
}

func TestValidateDumpRequest(t *testing.T) {
	tests := []struct {
		name    string
		req     *daemonv1.DumpRequest
		wantErr error
		msg     string
	}{
		{name: "valid", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp/ck", Name: "dump-1"}},
		{name: "valid name with dots inside", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp/ck", Name: "a.b..c"}},
		{name: "no type", req: &daemonv1.DumpRequest{Dir: "/tmp/ck", Name: "n"}, wantErr: errdefs.ErrInvalidArgument, msg: "type"},
		{name: "empty dir", req: &daemonv1.DumpRequest{Type: "process", Name: "n"}, wantErr: errdefs.ErrInvalidArgument, msg: "--dir"},
		{name: "relative dir", req: &daemonv1.DumpRequest{Type: "process", Dir: "ck", Name: "n"}, wantErr: errdefs.ErrInvalidArgument, msg: "not an absolute path"},
		{name: "dot-relative dir", req: &daemonv1.DumpRequest{Type: "process", Dir: "./ck", Name: "n"}, wantErr: errdefs.ErrInvalidArgument, msg: "not an absolute path"},
		{name: "name ..", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp", Name: ".."}, wantErr: errdefs.ErrInvalidArgument, msg: `".."`},
		{name: "name .", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp", Name: "."}, wantErr: errdefs.ErrInvalidArgument, msg: `"."`},
		{name: "name with slash", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp", Name: "a/b"}, wantErr: errdefs.ErrInvalidArgument, msg: `"a/b"`},
		{name: "name escaping", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp", Name: "../etc"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "hidden name", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp", Name: ".hidden"}, wantErr: errdefs.ErrInvalidArgument, msg: `".hidden"`},
		{name: "name with NUL", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp", Name: "a\x00b"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "longest name", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp", Name: strings.Repeat("n", adapters.MaxNameLen)}},
		{name: "name too long", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp", Name: strings.Repeat("n", adapters.MaxNameLen+1)}, wantErr: errdefs.ErrInvalidArgument, msg: "the limit is 200"},
		{name: "dir with NUL", req: &daemonv1.DumpRequest{Type: "process", Dir: "/tmp/a\x00b", Name: "n"}, wantErr: errdefs.ErrInvalidArgument, msg: "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &dumpCapture{}
			_, err := adapters.ValidateDumpRequest(next.handle)(context.Background(), testEnv(), testState(), tt.req, &daemonv1.DumpResponse{})
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, 1, next.calls)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.wantErr)
			for _, other := range []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrFailedPrecondition} {
				assert.NotErrorIs(t, err, other)
			}
			if tt.msg != "" {
				assert.Contains(t, err.Error(), tt.msg)
			}
			assert.Zero(t, next.calls, "next does not run on an invalid request")
		})
	}
}

func TestValidateDumpRequestEmptyName(t *testing.T) {
	// FillDumpDefaults runs first in the daemon's chain, but on its own the validator should not
	// let an empty name through: <dir>/<""> is <dir> itself.
	next := &dumpCapture{}
	_, err := adapters.ValidateDumpRequest(next.handle)(context.Background(), testEnv(), testState(),
		&daemonv1.DumpRequest{Type: "process", Dir: "/tmp"}, &daemonv1.DumpResponse{})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
	assert.Zero(t, next.calls)
}

func TestPrepareDumpDirCreates(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "not", "yet")
	details := &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 7}}
	req := &daemonv1.DumpRequest{Type: "process", Dir: parent, Name: "ck1", Criu: &daemonv1.CriuOptions{}, Details: details}
	resp := &daemonv1.DumpResponse{}
	want := filepath.Join(parent, "ck1")

	next := &dumpCapture{do: func(env *adapters.Env, st adapters.State, _ *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) error {
		assert.DirExists(t, st.ImageDir, "the directory exists when next runs")
		return os.WriteFile(filepath.Join(st.ImageDir, "pages-1.img"), []byte("data"), 0o600)
	}}
	outer := testState()
	require.NoError(t, dumpErr(adapters.PrepareDumpDir(next.handle)(context.Background(), testEnv(), outer, req, resp)))

	assert.Equal(t, want, next.st.ImageDir, "next sees st.ImageDir")
	assert.Empty(t, outer.ImageDir)
	info, err := os.Stat(want)
	require.NoError(t, err)
	assert.True(t, info.IsDir())
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	assert.FileExists(t, filepath.Join(want, "pages-1.img"), "a successful dump is kept")

	assert.Equal(t, want, resp.Path)
	ck := resp.Checkpoint
	require.NotNil(t, ck)
	assert.Equal(t, "ck1", ck.Name)
	assert.Equal(t, want, ck.Path)
	assert.Equal(t, "process", ck.Type)
	assert.Equal(t, sysinfo.Hostname(), ck.Hostname)
	assert.Equal(t, sysinfo.Kernel(), ck.Kernel)
	assert.Equal(t, version.Version, ck.CedanaVersion)
	assert.Same(t, details, ck.Details)
}

func TestPrepareDumpDirExistingName(t *testing.T) {
	parent := t.TempDir()
	existing := filepath.Join(parent, "taken")
	require.NoError(t, os.Mkdir(existing, 0o755))
	keep := filepath.Join(existing, "checkpoint.json")
	require.NoError(t, os.WriteFile(keep, []byte("precious"), 0o644))

	next := &dumpCapture{}
	resp := &daemonv1.DumpResponse{}
	_, err := adapters.PrepareDumpDir(next.handle)(context.Background(), testEnv(), testState(),
		&daemonv1.DumpRequest{Type: "process", Dir: parent, Name: "taken"}, resp)
	require.Error(t, err)
	assert.ErrorIs(t, err, errdefs.ErrAlreadyExists)
	assert.Contains(t, err.Error(), existing)
	assert.Zero(t, next.calls)
	assert.Empty(t, resp.Path)

	data, err := os.ReadFile(keep)
	require.NoError(t, err, "the existing checkpoint is not removed")
	assert.Equal(t, "precious", string(data))
}

func TestPrepareDumpDirRemovedWhenNextFails(t *testing.T) {
	parent := t.TempDir()
	errNext := errors.New("criu failed")
	next := &dumpCapture{err: errNext, do: func(env *adapters.Env, st adapters.State, _ *daemonv1.DumpRequest, _ *daemonv1.DumpResponse) error {
		require.NoError(t, os.MkdirAll(filepath.Join(st.ImageDir, "sub"), 0o755))
		return os.WriteFile(filepath.Join(st.ImageDir, "sub", "core-1.img"), []byte("partial"), 0o600)
	}}
	_, err := adapters.PrepareDumpDir(next.handle)(context.Background(), testEnv(), testState(),
		&daemonv1.DumpRequest{Type: "process", Dir: parent, Name: "partial"}, &daemonv1.DumpResponse{})
	require.Error(t, err)
	assert.ErrorIs(t, err, errNext)
	assert.Equal(t, 1, next.calls)
	assert.NoDirExists(t, filepath.Join(parent, "partial"))
	assert.DirExists(t, parent, "only the checkpoint directory is removed")
}

func TestPrepareDumpDirUnwritableParent(t *testing.T) {
	tests := []struct {
		name string
		dir  func(base string) string
	}{
		{name: "dir is a regular file", dir: func(base string) string { return filepath.Join(base, "file") }},
		{name: "dir under a regular file", dir: func(base string) string { return filepath.Join(base, "file", "sub") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(base, "file"), []byte("x"), 0o644))
			next := &dumpCapture{}
			_, err := adapters.PrepareDumpDir(next.handle)(context.Background(), testEnv(), testState(),
				&daemonv1.DumpRequest{Type: "process", Dir: tt.dir(base), Name: "ck"}, &daemonv1.DumpResponse{})
			require.Error(t, err)
			assert.Zero(t, next.calls)
			assert.NotErrorIs(t, err, errdefs.ErrAlreadyExists)
			assert.NoDirExists(t, filepath.Join(tt.dir(base), "ck"))
			assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
			assert.Contains(t, err.Error(), "--dir", "the message says how to fix it")
		})
	}
}

func TestWriteDumpMetadata(t *testing.T) {
	dir := t.TempDir()
	req := &daemonv1.DumpRequest{Type: "process", Name: "ck", Criu: &daemonv1.CriuOptions{ShellJob: true}}
	resp := &daemonv1.DumpResponse{Checkpoint: &daemonv1.Checkpoint{Name: "ck", Path: dir, Type: "process", Pid: 99}}
	env, st := testEnv(), testState()
	st.ImageDir = dir

	next := &dumpCapture{do: func(env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, _ *daemonv1.DumpResponse) error {
		assert.NoFileExists(t, filepath.Join(st.ImageDir, checkpoint.MetadataFile), "not written before next")
		// A runtime adapter may change the options: the final ones are recorded.
		req.Criu.FileLocks = true
		req.Criu.External = []string{"mnt[a]:b"}
		return os.WriteFile(filepath.Join(st.ImageDir, "pages-1.img"), make([]byte, 1000), 0o600)
	}}
	before := time.Now()
	require.NoError(t, dumpErr(adapters.WriteDumpMetadata(next.handle)(context.Background(), env, st, req, resp)))

	ck, err := checkpoint.Read(dir)
	require.NoError(t, err)
	assert.Equal(t, "ck", ck.Name)
	assert.Equal(t, int32(99), ck.Pid)
	assert.Equal(t, "process", ck.Type)
	require.NotNil(t, ck.Options)
	assert.True(t, proto.Equal(req.Criu, ck.Options), "options copied from req.Criu: want %v, got %v", req.Criu, ck.Options)
	assert.GreaterOrEqual(t, ck.SizeBytes, int64(1000))
	require.NotNil(t, ck.CreatedAt)
	assert.WithinDuration(t, time.Now(), ck.CreatedAt.AsTime(), time.Since(before)+time.Second)

	// resp.Checkpoint holds a copy of the options, not req.Criu itself.
	require.NotNil(t, resp.Checkpoint.Options)
	req.Criu.LeaveRunning = true
	assert.False(t, resp.Checkpoint.Options.LeaveRunning)
	assert.Equal(t, ck.SizeBytes, resp.Checkpoint.SizeBytes)
}

func TestWriteDumpMetadataNotWrittenOnFailure(t *testing.T) {
	dir := t.TempDir()
	errNext := errors.New("dump failed")
	env, st := testEnv(), testState()
	st.ImageDir = dir
	resp := &daemonv1.DumpResponse{Checkpoint: &daemonv1.Checkpoint{Name: "ck"}}
	_, err := adapters.WriteDumpMetadata((&dumpCapture{err: errNext}).handle)(context.Background(), env, st,
		&daemonv1.DumpRequest{Criu: &daemonv1.CriuOptions{}}, resp)
	assert.ErrorIs(t, err, errNext)
	assert.NoFileExists(t, filepath.Join(dir, checkpoint.MetadataFile))
	assert.Nil(t, resp.Checkpoint.Options)
	assert.Zero(t, resp.Checkpoint.SizeBytes)
}

// TestDumpChain runs the daemon's common dump adapters in their order, with a fake dump.
func TestDumpChain(t *testing.T) {
	env, st := testEnv(), testState()
	env.CheckpointDir = filepath.Join(t.TempDir(), "checkpoints")
	chain := func(dump *dumpCapture) adapters.DumpHandler {
		return adapters.DumpHandler(dump.handle).With(
			adapters.TimeDump, adapters.FillDumpDefaults, adapters.ValidateDumpRequest,
			adapters.PrepareDumpDir, adapters.WriteDumpMetadata,
		)
	}

	t.Run("success", func(t *testing.T) {
		dump := &dumpCapture{do: func(env *adapters.Env, st adapters.State, _ *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) error {
			resp.Checkpoint.Pid = 1234
			return os.WriteFile(filepath.Join(st.ImageDir, "core-1234.img"), []byte("core"), 0o600)
		}}
		req := &daemonv1.DumpRequest{Type: "process"}
		resp := &daemonv1.DumpResponse{}
		require.NoError(t, dumpErr(chain(dump)(context.Background(), env, st, req, resp)))
		assert.Equal(t, env.CheckpointDir, filepath.Dir(resp.Path))
		assert.Regexp(t, `^dump-process-\d+$`, filepath.Base(resp.Path))
		require.NotNil(t, resp.Stats)
		assert.NotNil(t, resp.Stats.Total)
		ck, err := checkpoint.Read(resp.Path)
		require.NoError(t, err)
		assert.Equal(t, int32(1234), ck.Pid)
		assert.Equal(t, resp.Path, ck.Path)
	})

	t.Run("failure leaves nothing", func(t *testing.T) {
		dump := &dumpCapture{err: errors.New("boom")}
		req := &daemonv1.DumpRequest{Type: "process", Name: "failed"}
		resp := &daemonv1.DumpResponse{}
		require.Error(t, dumpErr(chain(dump)(context.Background(), env, st, req, resp)))
		assert.NoDirExists(t, filepath.Join(env.CheckpointDir, "failed"))
		require.NotNil(t, resp.Stats)
		assert.NotNil(t, resp.Stats.Total)
	})

	t.Run("invalid request never reaches the dump", func(t *testing.T) {
		dump := &dumpCapture{}
		_, err := chain(dump)(context.Background(), env, st, &daemonv1.DumpRequest{Type: "process", Name: "../x"}, &daemonv1.DumpResponse{})
		assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
		assert.Zero(t, dump.calls)
	})
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestPrepareDumpDirKeepsDumpedImages: once the handler says it checkpointed the workload and CRIU
// stopped it, a later failure (here writing checkpoint.json) keeps its images in place, and the
// error says where and how to restore them; with --leave-running the workload is fine and nothing
// is kept; a handler that says it did not checkpoint the workload has its images removed.
func TestPrepareDumpDirKeepsDumpedImages(t *testing.T) {
	tests := []struct {
		name         string
		dumped       adapters.Dumped
		leaveRunning bool
		kept         bool
		msg          string
	}{
		{name: "dumped and stopped", dumped: true, kept: true, msg: "criu restore -D "},
		{name: "dumped, left running", dumped: true, leaveRunning: true, msg: "nothing was kept"},
		{name: "not dumped", dumped: false, msg: "checkpoint.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dumpThenBreakMetadata := func(ctx context.Context, env *adapters.Env, st adapters.State, _ *daemonv1.DumpRequest, _ *daemonv1.DumpResponse) (adapters.Dumped, error) {
				require.NoError(t, os.WriteFile(filepath.Join(st.ImageDir, "core-1.img"), []byte("core"), 0o600))
				// A directory in checkpoint.json's way makes WriteDumpMetadata fail.
				require.NoError(t, os.MkdirAll(filepath.Join(st.ImageDir, "checkpoint.json", "x"), 0o700))
				return tt.dumped, nil
			}
			h := adapters.DumpHandler(dumpThenBreakMetadata).With(adapters.PrepareDumpDir, adapters.WriteDumpMetadata)
			parent := t.TempDir()
			req := &daemonv1.DumpRequest{Type: "process", Dir: parent, Name: "ck", Criu: &daemonv1.CriuOptions{LeaveRunning: tt.leaveRunning}}
			dumped, err := h(context.Background(), testEnv(), testState(), req, &daemonv1.DumpResponse{})
			require.Error(t, err)
			assert.Equal(t, tt.dumped, dumped, "what the handler said comes back through the adapters")
			assert.ErrorContains(t, err, tt.msg)
			kept := filepath.Join(parent, "ck")
			if !tt.kept {
				assert.NoDirExists(t, kept)
				if tt.dumped {
					assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
				}
				return
			}
			assert.ErrorIs(t, err, errdefs.ErrFailedPrecondition)
			assert.ErrorContains(t, err, "kept at "+kept)
			assert.ErrorContains(t, err, "criu restore -D "+kept)
			assert.FileExists(t, filepath.Join(kept, "core-1.img"))
		})
	}
}

// beginJournal is a DumpJournal that records Begin and fails it with err.
type beginJournal struct {
	work, final string
	err         error
}

func (j *beginJournal) Begin(work, final string) error {
	j.work, j.final = work, final
	return j.err
}
func (j *beginJournal) Started(int, *daemonv1.Checkpoint) error { return nil }
func (j *beginJournal) Dumped() error                           { return nil }

// TestPrepareDumpDirBeginsTheJournal: the dump is recorded once its images' directory exists,
// before anything else runs; when it cannot be, the directory goes and the dump fails.
func TestPrepareDumpDirBeginsTheJournal(t *testing.T) {
	for _, fail := range []bool{false, true} {
		parent := t.TempDir()
		journal := &beginJournal{}
		if fail {
			journal.err = errors.New("database is locked")
		}
		next := &dumpCapture{do: func(env *adapters.Env, st adapters.State, _ *daemonv1.DumpRequest, _ *daemonv1.DumpResponse) error {
			assert.Equal(t, journal.work, st.ImageDir)
			return nil
		}}
		env, st := testEnv(), testState()
		st.Journal = journal
		req := &daemonv1.DumpRequest{Type: "process", Dir: parent, Name: "ck", Compression: "zstd", Criu: &daemonv1.CriuOptions{}}
		_, err := adapters.PrepareDumpDir(next.handle)(context.Background(), env, st, req, &daemonv1.DumpResponse{})
		assert.Equal(t, filepath.Join(parent, ".ck.images"), journal.work)
		assert.Equal(t, filepath.Join(parent, "ck.tar.zst"), journal.final)
		if fail {
			require.ErrorIs(t, err, journal.err)
			assert.Zero(t, next.calls)
			assert.NoDirExists(t, journal.work)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, 1, next.calls)
	}
}
