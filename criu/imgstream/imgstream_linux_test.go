package imgstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/archive/live"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/criu/imgstream"
	"github.com/cedana/cedana/internal/testutil"
	"github.com/cedana/cedana/storage"
	"github.com/cedana/cedana/storage/storagetest"
)

// memWorkload is a process holding 20 MB of random data (more than one ChunkSize of pages) that
// writes its checksum to before at start and to after whenever check appears.
type memWorkload struct {
	pid                  int
	before, after, check string
	exited               chan struct{}
}

// checksumLoop is a memWorkload's script: bash -c checksumLoop name tick before after check.
const checksumLoop = `exec 3<>"$1"; big=$(head -c 15000000 /dev/urandom | base64 -w0); printf %s "$big" | md5sum >"$2"
while :; do if [ -e "$4" ]; then printf %s "$big" | md5sum >"$3"; rm -f "$4"; fi; read -t 0.1 -u 3 || :; done`

func startWorkload(t *testing.T) *memWorkload {
	dir := t.TempDir()
	w := &memWorkload{before: filepath.Join(dir, "before"), after: filepath.Join(dir, "after"), check: filepath.Join(dir, "check"), exited: make(chan struct{})}
	tick := filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	cmd := exec.Command("bash", "-c", checksumLoop, "big", tick, w.before, w.after, w.check)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	w.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() { _ = unix.Kill(-w.pid, unix.SIGKILL) })
	require.Eventually(t, func() bool { b, _ := os.ReadFile(w.before); return len(b) > 32 }, 60*time.Second, 20*time.Millisecond)
	return w
}

// verify asks the (restored) workload for its checksum and compares it with the first one.
func (w *memWorkload) verify(t *testing.T) {
	_ = os.Remove(w.after)
	require.NoError(t, os.WriteFile(w.check, nil, 0o600))
	require.Eventually(t, func() bool { b, _ := os.ReadFile(w.after); return len(b) > 32 }, 30*time.Second, 20*time.Millisecond)
	want, _ := os.ReadFile(w.before)
	got, _ := os.ReadFile(w.after)
	assert.Equal(t, string(want), string(got), "memory intact")
}

func runCRIU(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = criu.Env()
	return cmd
}

// TestStreamedDumpRestore dumps a process with `criu dump --stream` into a directory, an archive
// of every codec, or a zstd archive streamed to S3, and restores it with `criu restore --stream` from there, checking its memory.
func TestStreamedDumpRestore(t *testing.T) {
	bin := testutil.RequireCRIU(t).Binary
	for _, tc := range []struct {
		codec    archive.Codec
		memLimit int64
		s3       bool // the archive goes to and comes from an S3 object (versitygw)
	}{
		{archive.None, 0, false},
		{archive.Tar, 0, false},
		{archive.Gzip, 0, false},
		{archive.LZ4, 0, false},
		{archive.Zlib, imgstream.ChunkSize, false},
		{archive.Zstd, imgstream.ChunkSize, false},
		{archive.Zstd, 0, true},
	} {
		name := string(tc.codec)
		if tc.s3 {
			name += "-s3"
		}
		t.Run(name, func(t *testing.T) {
			w := startWorkload(t)
			imgs, out := t.TempDir(), t.TempDir()
			var sink imgstream.Sink = &imgstream.DirSink{Dir: out}
			var aw *archive.Writer
			var buf bytes.Buffer
			var dest io.Writer = &buf
			var upload live.Sink
			var s3 *storage.Client
			loc := storage.Location{Key: "strm/" + name + tc.codec.Extension()}
			if tc.s3 {
				srv := storagetest.Start(t)
				cfg := storage.Config{Endpoint: "http://" + srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
				loc.Bucket = srv.Bucket
				var err error
				upload, err = live.NewUploadSink(context.Background(), cfg, loc)
				require.NoError(t, err)
				dest = upload
				s3, err = storage.New(cfg)
				require.NoError(t, err)
			}
			if tc.codec.IsArchive() {
				var err error
				aw, err = archive.NewWriter(dest, tc.codec, 2)
				require.NoError(t, err)
				sink = imgstream.ArchiveSink{W: aw}
			}
			c, err := imgstream.StartCapture(imgs, tc.memLimit, t.TempDir(), sink)
			require.NoError(t, err)
			dump := runCRIU(bin, "dump", "--stream", "-D", imgs, "-t", strconv.Itoa(w.pid), "-o", "dump.log", "-v4")
			outp, err := dump.CombinedOutput()
			if err != nil {
				c.Abort()
				log, _ := os.ReadFile(filepath.Join(imgs, "dump.log"))
				t.Fatalf("criu dump --stream: %v %s\n%s", err, outp, log)
			}
			st, err := c.Wait()
			require.NoError(t, err)
			assert.Greater(t, st.Bytes, int64(20_000_000))
			if tc.memLimit > 0 {
				assert.Positive(t, st.Spilled, "beyond the memory limit, images spill to a file")
				assert.LessOrEqual(t, st.PeakMemory, tc.memLimit)
			}
			<-w.exited

			rimgs := t.TempDir()
			var src imgstream.Source = imgstream.DirSource(out)
			if aw != nil {
				require.NoError(t, aw.Close())
				var from io.Reader = &buf
				if upload != nil {
					_, err := upload.Commit()
					require.NoError(t, err)
					obj, _, err := s3.Open(context.Background(), loc)
					require.NoError(t, err)
					defer obj.Close()
					from = obj
				}
				ts, err := archive.OpenTar(from, 2)
				require.NoError(t, err)
				defer ts.Close()
				src = imgstream.NewArchiveSource(ts, tc.memLimit, t.TempDir())
			}
			restoreStreamed(t, bin, rimgs, src, st.Bytes)
			w.verify(t)
		})
	}
}

// restoreStreamed runs `criu restore --stream` in dir, served from src, and checks that it took
// the dumped bytes.
func restoreStreamed(t *testing.T, bin, dir string, src imgstream.Source, dumped int64) {
	t.Helper()
	s, err := imgstream.StartServe(dir, src)
	require.NoError(t, err)
	if err := runCRIU(bin, "restore", "--stream", "-D", dir, "-d", "-o", "restore.log", "-v4").Run(); err != nil {
		s.Abort()
		log, _ := os.ReadFile(filepath.Join(dir, "restore.log"))
		t.Fatalf("criu restore --stream: %v\n%s", err, log)
	}
	sent, err := s.Wait()
	require.NoError(t, err)
	assert.Equal(t, dumped, sent, "every byte dumped was served back")
}

// TestCRIUKilledMidStream: CRIU killed while it streams the pages fails the dump, and the
// process keeps running with its memory intact.
func TestCRIUKilledMidStream(t *testing.T) {
	bin := testutil.RequireCRIU(t).Binary
	w := startWorkload(t)
	imgs := t.TempDir()
	started := make(chan struct{})
	sink := &killSink{started: started}
	c, err := imgstream.StartCapture(imgs, 0, t.TempDir(), sink)
	require.NoError(t, err)
	dump := runCRIU(bin, "dump", "--stream", "-D", imgs, "-t", strconv.Itoa(w.pid), "-o", "dump.log")
	require.NoError(t, dump.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("criu sent no pages")
	}
	require.NoError(t, dump.Process.Kill())
	assert.Error(t, dump.Wait(), "criu was killed")
	c.Abort()
	// The tracer's death detaches the tree; a task CRIU left stopped is continued, as the daemon does.
	_ = unix.Kill(-w.pid, unix.SIGCONT)
	select {
	case <-w.exited:
		t.Fatal("the process died with criu")
	default:
	}
	w.verify(t)
}

// killSink signals when the first chunk of pages arrives.
type killSink struct {
	started chan struct{}
	once    bool
}

func (k *killSink) Put(name string, _ int, last bool, _ int64, _ io.Reader) error {
	if !k.once && strings.HasPrefix(name, "pages-") && !last {
		k.once = true
		close(k.started)
	}
	return nil
}

// TestHeldCaptureImage: a held capture gives the pstree image CRIU streamed before the images go
// to the sink, and it lists the dumped tree; an image CRIU did not send is fs.ErrNotExist, and a
// capture that does not hold its images gives none.
func TestHeldCaptureImage(t *testing.T) {
	bin := testutil.RequireCRIU(t).Binary
	tree := exec.Command("bash", "-c", "sleep 600 & sleep 600 & wait")
	tree.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, tree.Start())
	t.Cleanup(func() { _ = unix.Kill(-tree.Process.Pid, unix.SIGKILL); _ = tree.Wait() })
	children := func() []string {
		data, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(tree.Process.Pid), "task", strconv.Itoa(tree.Process.Pid), "children"))
		return strings.Fields(string(data))
	}
	require.Eventually(t, func() bool { return len(children()) == 2 }, 10*time.Second, 10*time.Millisecond)
	want := []int32{int32(tree.Process.Pid)}
	for _, c := range children() {
		n, err := strconv.Atoi(c)
		require.NoError(t, err)
		want = append(want, int32(n))
	}
	slices.Sort(want[1:])

	imgs, out := t.TempDir(), t.TempDir()
	c, err := imgstream.StartHeldCapture(imgs, 0, t.TempDir(), nil, &imgstream.DirSink{Dir: out}, 2)
	require.NoError(t, err)
	defer c.Release()
	dump := runCRIU(bin, "dump", "--stream", "-D", imgs, "-t", strconv.Itoa(tree.Process.Pid), "-o", "dump.log")
	if outp, err := dump.CombinedOutput(); err != nil {
		c.Abort()
		t.Fatalf("criu dump --stream: %v %s", err, outp)
	}
	img, err := c.Image(checkpoint.PstreeImage)
	require.NoError(t, err)
	pids, err := checkpoint.TreePIDs(img)
	require.NoError(t, err)
	assert.Equal(t, want, pids)
	_, err = c.Image("nothing.img")
	assert.ErrorIs(t, err, fs.ErrNotExist)

	c.Flush()
	_, err = c.Wait()
	require.NoError(t, err)
	assert.Equal(t, want, checkpoint.DumpedPIDs(out, want[0]), "the same PIDs as from a directory")

	plain, err := imgstream.StartCapture(t.TempDir(), 0, t.TempDir(), &imgstream.DirSink{Dir: t.TempDir()})
	require.NoError(t, err)
	defer plain.Abort()
	_, err = plain.Image(checkpoint.PstreeImage)
	assert.ErrorContains(t, err, "only a held capture")
}

// startTree starts a process tree of two memWorkloads, the second a child of the first: CRIU
// dumps a pages image for each.
func startTree(t *testing.T) (root, child *memWorkload) {
	dir := t.TempDir()
	mk := func(p string) *memWorkload {
		return &memWorkload{before: filepath.Join(dir, p+"before"), after: filepath.Join(dir, p+"after"), check: filepath.Join(dir, p+"check")}
	}
	root, child = mk("r"), mk("c")
	root.exited = make(chan struct{})
	tick := filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	script := `bash -c "$0" x "$1" "$5" "$6" "$7" & ` + checksumLoop
	cmd := exec.Command("bash", "-c", script, checksumLoop, tick, root.before, root.after, root.check, child.before, child.after, child.check)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	root.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(root.exited) }()
	t.Cleanup(func() { _ = unix.Kill(-root.pid, unix.SIGKILL) })
	for _, w := range []*memWorkload{root, child} {
		require.Eventually(t, func() bool { b, _ := os.ReadFile(w.before); return len(b) > 32 }, 60*time.Second, 20*time.Millisecond)
	}
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", root.pid, root.pid))
	require.NoError(t, err)
	// The first child is the other process (the root's own pipelines may still be running).
	fields := strings.Fields(string(kids))
	require.NotEmpty(t, fields, "the root has a child")
	child.pid, err = strconv.Atoi(fields[0])
	require.NoError(t, err)
	return root, child
}

// TestHeldCaptureEncoded dumps a process tree into an archive through a held capture that
// compresses the pages while CRIU dumps (or, for zlib, cannot), with enough memory, or so little
// that chunks spill and go raw beside the encoded ones; the archive reads back with Extract
// byte-exact as the images Rescue writes, and restores
// with `criu restore --stream` with every process's memory intact.
func TestHeldCaptureEncoded(t *testing.T) {
	bin := testutil.RequireCRIU(t).Binary
	for _, tc := range []struct {
		codec    archive.Codec
		memLimit int64
	}{
		{archive.Zstd, 2 * imgstream.ChunkSize},
		{archive.Zstd, 0},
		{archive.LZ4, imgstream.ChunkSize},
		{archive.Gzip, 0},
		{archive.Zlib, imgstream.ChunkSize},
	} {
		t.Run(string(tc.codec)+"-"+strconv.FormatInt(tc.memLimit>>20, 10), func(t *testing.T) {
			root, child := startTree(t)
			imgs := t.TempDir()
			var buf bytes.Buffer
			aw, err := archive.NewWriter(&buf, tc.codec, 2)
			require.NoError(t, err)
			c, err := imgstream.StartHeldCapture(imgs, tc.memLimit, t.TempDir(), imgstream.NewPool(0), imgstream.ArchiveSink{W: aw}, 2)
			require.NoError(t, err)
			defer c.Release()
			dump := runCRIU(bin, "dump", "--stream", "-D", imgs, "-t", strconv.Itoa(root.pid), "-o", "dump.log")
			if outp, err := dump.CombinedOutput(); err != nil {
				c.Abort()
				log, _ := os.ReadFile(filepath.Join(imgs, "dump.log"))
				t.Fatalf("criu dump --stream: %v %s\n%s", err, outp, log)
			}
			<-c.Drained()
			index := imgstream.EncodeIndex(c.Index())
			_, err = aw.AddReader(imgstream.IndexName, int64(len(index)), bytes.NewReader(index))
			require.NoError(t, err)
			c.Flush()
			st, err := c.Wait()
			require.NoError(t, err)
			require.NoError(t, aw.Close())
			switch {
			case !tc.codec.Concatenable():
				assert.Zero(t, st.Encoded)
			case tc.memLimit == 0:
				// Ahead while CRIU dumps or once it is done: the encoder of the dump runs at the lowest
				// priority, so how much it does first depends on what else the machine runs.
				assert.Greater(t, st.Encoded+st.EncodedLater, int64(40_000_000), "the pages of both processes were compressed by the encoders")
				assert.Zero(t, st.Spilled, "the small images packed, everything fits in the default limit")
			default: // what found no room goes as it is, beside what did: base64 text shrinks too
				// little for an encoder to spill it (see TestHeldCaptureEncodesLate for what does)
				assert.Positive(t, st.Spilled, "the images spilled")
			}
			<-root.exited
			// The orphaned child is reaped by init, which may take a while: its PID must be free.
			require.Eventually(t, func() bool {
				_, err := os.Stat(fmt.Sprintf("/proc/%d", child.pid))
				return errors.Is(err, fs.ErrNotExist)
			}, 30*time.Second, 20*time.Millisecond)

			rescued, extracted := t.TempDir(), t.TempDir()
			require.NoError(t, c.Rescue(&imgstream.DirSink{Dir: rescued}))
			_, err = archive.Extract(bytes.NewReader(buf.Bytes()), extracted, 2)
			require.NoError(t, err)
			entries, err := os.ReadDir(rescued)
			require.NoError(t, err)
			pages := 0
			for _, e := range entries {
				want, err := os.ReadFile(filepath.Join(rescued, e.Name()))
				require.NoError(t, err)
				got, err := os.ReadFile(filepath.Join(extracted, e.Name()))
				require.NoError(t, err)
				require.True(t, bytes.Equal(want, got), e.Name())
				if len(e.Name()) > 6 && e.Name()[:6] == "pages-" {
					pages++
				}
			}
			assert.GreaterOrEqual(t, pages, 2, "a pages image per process")

			ts, err := archive.OpenTar(bytes.NewReader(buf.Bytes()), 2)
			require.NoError(t, err)
			defer ts.Close()
			src := imgstream.NewArchiveSource(ts, tc.memLimit, t.TempDir())
			require.NoError(t, src.ReadIndex())
			restoreStreamed(t, bin, t.TempDir(), src, st.Bytes)
			root.verify(t)
			child.verify(t)
		})
	}
}
