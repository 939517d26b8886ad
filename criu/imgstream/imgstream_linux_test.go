package imgstream_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/criu/imgstream"
	"github.com/cedana/cedana/internal/testutil"
)

// memWorkload is a process holding 20 MB of random data (more than one ChunkSize of pages) that
// writes its checksum to before at start and to after whenever check appears.
type memWorkload struct {
	pid                  int
	before, after, check string
	exited               chan struct{}
}

func startWorkload(t *testing.T) *memWorkload {
	dir := t.TempDir()
	w := &memWorkload{before: filepath.Join(dir, "before"), after: filepath.Join(dir, "after"), check: filepath.Join(dir, "check"), exited: make(chan struct{})}
	tick := filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	script := `exec 3<>"$1"; big=$(head -c 15000000 /dev/urandom | base64 -w0); printf %s "$big" | md5sum >"$2"
while :; do if [ -e "$4" ]; then printf %s "$big" | md5sum >"$3"; rm -f "$4"; fi; read -t 0.1 -u 3 || :; done`
	cmd := exec.Command("bash", "-c", script, "big", tick, w.before, w.after, w.check)
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

// TestStreamedDumpRestore dumps a process with `criu dump --stream` into a directory or an archive
// of every codec and restores it with `criu restore --stream` from there, checking its memory.
func TestStreamedDumpRestore(t *testing.T) {
	bin := testutil.RequireCRIU(t).Binary
	for _, tc := range []struct {
		codec    archive.Codec
		memLimit int64
	}{
		{archive.None, 0},
		{archive.Tar, 0},
		{archive.Gzip, 0},
		{archive.LZ4, 0},
		{archive.Zlib, imgstream.ChunkSize},
		{archive.Zstd, imgstream.ChunkSize},
	} {
		t.Run(string(tc.codec), func(t *testing.T) {
			w := startWorkload(t)
			imgs, out := t.TempDir(), t.TempDir()
			var sink imgstream.Sink = &imgstream.DirSink{Dir: out}
			var aw *archive.Writer
			var buf bytes.Buffer
			if tc.codec.IsArchive() {
				var err error
				aw, err = archive.NewWriter(&buf, tc.codec, 2)
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
				ts, err := archive.OpenTar(&buf, 2)
				require.NoError(t, err)
				defer ts.Close()
				src = imgstream.NewArchiveSource(ts, tc.memLimit, t.TempDir())
			}
			s, err := imgstream.StartServe(rimgs, src)
			require.NoError(t, err)
			restore := runCRIU(bin, "restore", "--stream", "-D", rimgs, "-d", "-o", "restore.log", "-v4")
			require.NoError(t, restore.Start())
			if err := restore.Wait(); err != nil {
				s.Abort()
				log, _ := os.ReadFile(filepath.Join(rimgs, "restore.log"))
				t.Fatalf("criu restore --stream: %v\n%s", err, log)
			}
			sent, err := s.Wait()
			require.NoError(t, err)
			assert.Equal(t, st.Bytes, sent, "every byte dumped was served back")
			w.verify(t)
		})
	}
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
