package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/checkpoint-restore/go-criu/v8/crit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/testutil"
)

// holderScript keeps $1 open on fd 4 and sleeps on the FIFO $0 (fd 3), forking nothing.
const holderScript = `exec 3<>"$0" 4<"$1"; while :; do read -t 0.2 -u 3 || :; done`

// TestInspectCheckpoint dumps a real process (left running) as a directory and as a zstd archive
// and decodes each with InspectCheckpoint, by catalog ID and by path: its process tree, the file
// it keeps open, its mappings, resident pages and (no) sockets.
func TestInspectCheckpoint(t *testing.T) {
	testutil.RequireCRIU(t)
	d := startTestDaemon(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dir := t.TempDir()
	fifo, held := filepath.Join(dir, "tick"), filepath.Join(dir, "held.txt")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	require.NoError(t, os.WriteFile(held, []byte("kept open\n"), 0o644))
	run, err := d.client.Run(ctx, &daemonv1.RunRequest{
		Type: "process", Jid: "inspect-holder",
		Process: &daemonv1.ProcessRun{Path: "bash", Args: []string{"-c", holderScript, fifo, held}},
	})
	require.NoError(t, err)
	pid := uint32(run.Job.Pid)
	t.Cleanup(func() { _ = unix.Kill(int(pid), unix.SIGKILL) })
	require.Eventually(t, func() bool {
		target, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(int(pid)), "fd", "4"))
		return target == held
	}, 10*time.Second, 20*time.Millisecond, "the holder opened its file")

	for _, codec := range []string{"none", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			dump, err := d.client.Dump(ctx, &daemonv1.DumpRequest{Jid: "inspect-holder", Compression: codec, Criu: &daemonv1.CriuOptions{LeaveRunning: true}})
			require.NoError(t, err)
			inspect := func(req *daemonv1.InspectCheckpointRequest) string {
				t.Helper()
				resp, err := d.client.InspectCheckpoint(ctx, req)
				require.NoError(t, err)
				assert.Equal(t, dump.Path, resp.Path)
				assert.False(t, resp.Truncated)
				return resp.Json
			}

			var tree crit.PsTree
			require.NoError(t, json.Unmarshal([]byte(inspect(&daemonv1.InspectCheckpointRequest{Id: dump.CheckpointId, Type: "ps"})), &tree))
			assert.Equal(t, pid, tree.PID)
			assert.Equal(t, "bash", tree.Comm)
			assert.Equal(t, pid, tree.SID, "a job is its session's leader")

			var fds []*crit.Fd
			require.NoError(t, json.Unmarshal([]byte(inspect(&daemonv1.InspectCheckpointRequest{Path: dump.Path, Type: "fd"})), &fds))
			require.Len(t, fds, 1)
			assert.Contains(t, fds[0].Files, &crit.File{Fd: "4", Type: "REG", Path: held})

			var mems []*crit.MemMap
			require.NoError(t, json.Unmarshal([]byte(inspect(&daemonv1.InspectCheckpointRequest{Id: dump.CheckpointId, Type: "mem"})), &mems))
			require.Len(t, mems, 1)
			assert.Contains(t, mems[0].Exe, "bash")
			assert.NotEmpty(t, mems[0].Mems)

			var rss []*crit.RssMap
			require.NoError(t, json.Unmarshal([]byte(inspect(&daemonv1.InspectCheckpointRequest{Id: dump.CheckpointId, Type: "rss"})), &rss))
			require.Len(t, rss, 1)
			assert.NotEmpty(t, rss[0].Rsses)

			assert.JSONEq(t, `[]`, inspect(&daemonv1.InspectCheckpointRequest{Id: dump.CheckpointId, Type: "sk"}))
		})
	}

	t.Run("not a checkpoint", func(t *testing.T) {
		_, err := d.client.InspectCheckpoint(ctx, &daemonv1.InspectCheckpointRequest{Path: t.TempDir(), Type: "ps"})
		require.Error(t, err)
		assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
		assert.Contains(t, err.Error(), "no CRIU image pstree.img")
	})
	t.Run("no such id", func(t *testing.T) {
		_, err := d.client.InspectCheckpoint(ctx, &daemonv1.InspectCheckpointRequest{Id: "nope", Type: "ps"})
		assert.Equal(t, connect.CodeNotFound, connect.CodeOf(err))
	})
}

func TestValidateInspectCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  *daemonv1.InspectCheckpointRequest
		want string
	}{
		{"by id", &daemonv1.InspectCheckpointRequest{Id: "ck-1", Type: "ps"}, ""},
		{"by path", &daemonv1.InspectCheckpointRequest{Path: "/ck/a.tar.zst", Type: "fd"}, ""},
		{"by url", &daemonv1.InspectCheckpointRequest{Path: "s3://bucket/ck/a.tar", Type: "sk"}, ""},
		{"neither", &daemonv1.InspectCheckpointRequest{Type: "ps"}, "give its ID"},
		{"both", &daemonv1.InspectCheckpointRequest{Id: "a", Path: "/ck", Type: "ps"}, "give one of them"},
		{"relative", &daemonv1.InspectCheckpointRequest{Path: "ck", Type: "ps"}, "is relative"},
		{"bad id", &daemonv1.InspectCheckpointRequest{Id: "a/b", Type: "ps"}, "IDs are letters"},
		{"bad type", &daemonv1.InspectCheckpointRequest{Id: "a", Type: "gpu"}, "choose one of ps, fd, mem, rss, sk"},
		{"no type", &daemonv1.InspectCheckpointRequest{Id: "a"}, "choose one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateInspectCheckpoint(tc.req)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
