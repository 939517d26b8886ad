package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/archive/live"
	"github.com/cedana/cedana/checkpoint"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/storage"
	"github.com/cedana/cedana/store"
	"github.com/cedana/cedana/sysinfo"
)

// journalService is a service on a fresh store, enough to settle dumps.
func journalService(t *testing.T) (*service, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "db"))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &service{jobs: jobs.New(st, dir, log), log: log, env: &adapters.Env{}}
	s.backgroundCtx, s.stopBackground = context.WithCancel(context.Background())
	t.Cleanup(s.close)
	return s, st
}

// pendingDump records a pending dump of the given state, as a daemon killed during it leaves it.
func pendingDump(t *testing.T, st *store.Store, d store.PendingDump, ck *daemonv1.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.BeginDump(ctx, d))
	meta, err := protojson.Marshal(ck)
	require.NoError(t, err)
	require.NoError(t, st.DumpStarted(ctx, d.ID, d.PID, d.PIDStart, d.CRIUPID, d.CRIUStart, meta))
	if d.State == store.DumpDumped {
		require.NoError(t, st.DumpDone(ctx, d.ID))
	}
}

// fakeImages writes a few image files into dir, which it creates.
func fakeImages(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	for _, name := range []string{"core-4242.img", "pages-1.img", "dump.log"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("image "+name), 0o600))
	}
}

// gonePID is a PID whose process has exited (and been reaped), as a stopped workload's.
func gonePID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// liveProcess starts a process that runs until the test ends.
func liveProcess(t *testing.T) (pid int, start uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid, sysinfo.StartTime(cmd.Process.Pid)
}

// TestSettleDumps: what a restarted daemon makes of the dumps its predecessor left in the journal.
func TestSettleDumps(t *testing.T) {
	ctx := context.Background()
	livePID, liveStart := liveProcess(t)
	tests := []struct {
		name        string
		state       store.DumpState
		compression string // "" for an uncompressed checkpoint
		archived    bool   // the archive was complete
		running     bool   // the tree still runs
		leave       bool   // --leave-running
		metadata    bool   // checkpoint.json was written
		want        string // "rolled back", or the recorded path relative to the directory
	}{
		{name: "dumping: rolled back", state: store.DumpDumping, want: "rolled back"},
		{name: "dumping archive: rolled back", state: store.DumpDumping, compression: "zstd", want: "rolled back"},
		{name: "dumped: completed in place", state: store.DumpDumped, want: "ck"},
		{name: "dumped with metadata: recorded as it is", state: store.DumpDumped, metadata: true, want: "ck"},
		{name: "dumped but the tree runs: CRIU resumed it", state: store.DumpDumped, running: true, want: "rolled back"},
		{name: "dumped, leave-running: kept", state: store.DumpDumped, running: true, leave: true, want: "ck"},
		{name: "dumped, archive complete", state: store.DumpDumped, compression: "zstd", archived: true, want: "ck.tar.zst"},
		{name: "dumped, archive unfinished: images kept", state: store.DumpDumped, compression: "zstd", metadata: true, want: "ck"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st := journalService(t)
			dir := t.TempDir()
			final, work := filepath.Join(dir, "ck"), filepath.Join(dir, "ck")
			if tt.compression != "" {
				final, work = filepath.Join(dir, "ck.tar.zst"), filepath.Join(dir, ".ck.images")
			}
			fakeImages(t, work)
			switch {
			case tt.archived: // the archive was renamed into place
				require.NoError(t, os.WriteFile(final, []byte("whole archive"), 0o600))
			case tt.compression != "":
				require.NoError(t, os.WriteFile(live.PartialArchive(final), []byte("half"), 0o600))
			}
			pid, start := gonePID(t), uint64(0)
			if tt.running {
				pid, start = livePID, liveStart
			}
			ck := &daemonv1.Checkpoint{
				Name: "ck", Path: final, Type: "process", Pid: int32(pid), Compression: tt.compression,
				Options: &daemonv1.CriuOptions{LeaveRunning: tt.leave},
			}
			if tt.metadata {
				require.NoError(t, checkpoint.Write(work, ck))
			}
			pendingDump(t, st, store.PendingDump{
				ID: "ck-1", State: tt.state, WorkDir: work, Path: final, PID: pid, PIDStart: start,
				CRIUPID: gonePID(t),
			}, ck)

			require.NoError(t, s.settleDumps(ctx))

			pending, err := st.ListPendingDumps(ctx)
			require.NoError(t, err)
			assert.Empty(t, pending, "the dump is settled")
			list, err := st.ListCheckpoints(ctx, "")
			require.NoError(t, err)
			assert.NoFileExists(t, live.PartialArchive(final), "no partial archive is left")
			if tt.want == "rolled back" {
				assert.Empty(t, list)
				assert.NoDirExists(t, work)
				assert.Empty(t, entries(t, dir))
				return
			}
			require.Len(t, list, 1)
			got := list[0]
			assert.Equal(t, "ck-1", got.ID, "under the ID the dump had")
			assert.Equal(t, filepath.Join(dir, tt.want), got.Path)
			assert.Equal(t, []string{tt.want}, entries(t, dir), "nothing else is left")
			meta := &daemonv1.Checkpoint{}
			require.NoError(t, protojson.Unmarshal(got.Metadata, meta))
			assert.Equal(t, got.Path, meta.Path)
			if !tt.archived {
				written, err := checkpoint.Read(got.Path)
				require.NoError(t, err, "the kept images are a complete checkpoint")
				assert.Equal(t, got.Path, written.Path)
				assert.Equal(t, "none", written.Compression)
				if !tt.metadata {
					assert.Equal(t, []int32{int32(pid), 4242}, written.Pids, "the PIDs CRIU dumped")
				}
				assert.Positive(t, got.Size)
			}
		})
	}
}

// TestSettleDumpsWaitsForCRIU: a dump whose CRIU outlived the previous daemon is settled once that
// CRIU exits; meanwhile its tree and job are claimed, so no other dump of them starts.
func TestSettleDumpsWaitsForCRIU(t *testing.T) {
	ctx := context.Background()
	s, st := journalService(t)
	require.NoError(t, st.CreateJob(ctx, store.Job{JID: "j1", Type: "process", Status: store.JobHalted}))
	criu := exec.Command("sleep", "600")
	require.NoError(t, criu.Start())
	exited := make(chan struct{})
	go func() { _ = criu.Wait(); close(exited) }()
	t.Cleanup(func() { _ = criu.Process.Kill(); <-exited })
	work := filepath.Join(t.TempDir(), "ck")
	fakeImages(t, work)
	pid := gonePID(t)
	pendingDump(t, st, store.PendingDump{
		ID: "ck-1", JID: "j1", State: store.DumpDumped, WorkDir: work, Path: work, PID: pid,
		CRIUPID: criu.Process.Pid, CRIUStart: sysinfo.StartTime(criu.Process.Pid),
	},
		&daemonv1.Checkpoint{Name: "ck", Path: work, Type: "process", Pid: int32(pid)})

	require.NoError(t, s.settleDumps(ctx))
	pending, err := st.ListPendingDumps(ctx)
	require.NoError(t, err)
	assert.Len(t, pending, 1, "not settled while its CRIU runs")
	_, err = s.jobs.Lock("job:j1", "job j1")
	assert.ErrorIs(t, err, errdefs.ErrConflict, "the job is claimed meanwhile")
	_, err = s.jobs.Lock("tree:"+strconv.Itoa(pid), "the tree")
	assert.ErrorIs(t, err, errdefs.ErrConflict, "the tree is claimed meanwhile")

	require.NoError(t, criu.Process.Kill())
	<-exited
	require.Eventually(t, func() bool {
		list, err := st.ListCheckpoints(ctx, "j1")
		return err == nil && len(list) == 1
	}, 10*time.Second, 10*time.Millisecond, "settled once its CRIU exited")
	require.Eventually(t, func() bool {
		release, err := s.jobs.Lock("job:j1", "job j1")
		if err == nil {
			release()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the claims are released")
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

// TestSettleRemoteDump: a done dump to S3 whose upload cannot be confirmed keeps its images as an
// uncompressed checkpoint in the temporary directory.
func TestSettleRemoteDump(t *testing.T) {
	ctx := context.Background()
	s, st := journalService(t)
	s.env.S3 = storage.Config{Endpoint: "127.0.0.1:1", Insecure: true, AccessKey: "k", SecretKey: "s"} // unreachable
	tmp := t.TempDir()
	work := filepath.Join(tmp, "cedana-dump-ck-123")
	fakeImages(t, work)
	final := "s3://bucket/prefix/ck.tar.zst"
	pendingDump(t, st, store.PendingDump{ID: "ck-1", State: store.DumpDumped, WorkDir: work, Path: final, PID: gonePID(t), CRIUPID: gonePID(t)},
		&daemonv1.Checkpoint{Name: "ck", Path: final, Type: "process", Compression: "zstd"})

	require.NoError(t, s.settleDumps(ctx))
	list, err := st.ListCheckpoints(ctx, "")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, filepath.Join(tmp, "cedana-kept-ck"), list[0].Path)
	assert.FileExists(t, filepath.Join(list[0].Path, checkpoint.MetadataFile))
	assert.Equal(t, []string{"cedana-kept-ck"}, entries(t, tmp))
}
