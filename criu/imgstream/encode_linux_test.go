package imgstream_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/criu/imgstream"
	"github.com/cedana/cedana/internal/testutil"
)

// startTree starts a process tree of two memWorkloads, the second a child of the first: CRIU
// dumps a pages image for each.
func startTree(t *testing.T) (root, child *memWorkload) {
	dir := t.TempDir()
	mk := func(p string) *memWorkload {
		return &memWorkload{before: filepath.Join(dir, p+"before"), after: filepath.Join(dir, p+"after"), check: filepath.Join(dir, p+"check")}
	}
	root, child = mk("r"), mk("c")
	root.exited = make(chan struct{})
	loop := `exec 3<>"$1"; big=$(head -c 15000000 /dev/urandom | base64 -w0); printf %s "$big" | md5sum >"$2"
while :; do if [ -e "$4" ]; then printf %s "$big" | md5sum >"$3"; rm -f "$4"; fi; read -t 0.1 -u 3 || :; done`
	tick := filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	script := `bash -c "$0" x "$1" "$5" "$6" "$7" & ` + loop
	cmd := exec.Command("bash", "-c", script, loop, tick, root.before, root.after, root.check, child.before, child.after, child.check)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	root.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(root.exited) }()
	t.Cleanup(func() { _ = unix.Kill(-root.pid, unix.SIGKILL) })
	for _, w := range []*memWorkload{root, child} {
		require.Eventually(t, func() bool { b, _ := os.ReadFile(w.before); return len(b) > 32 }, 60*time.Second, 20*time.Millisecond)
	}
	return root, child
}

// TestHeldCaptureEncoded dumps a process tree into an archive through a held capture that
// compresses the pages while CRIU dumps (or, for zlib, cannot), with little memory so that chunks
// spill; the archive reads back with Extract byte-exact as the images Rescue writes, and restores
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
			c, err := imgstream.StartHeldCapture(imgs, tc.memLimit, t.TempDir(), imgstream.NewPool(), imgstream.ArchiveSink{W: aw}, 2)
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
			if tc.codec.Concatenable() {
				assert.Greater(t, st.Encoded, int64(40_000_000), "the pages of both processes were compressed ahead")
			} else {
				assert.Zero(t, st.Encoded)
			}
			<-root.exited

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
			rimgs := t.TempDir()
			s, err := imgstream.StartServe(rimgs, src)
			require.NoError(t, err)
			restore := runCRIU(bin, "restore", "--stream", "-D", rimgs, "-d", "-o", "restore.log")
			if err := restore.Run(); err != nil {
				s.Abort()
				log, _ := os.ReadFile(filepath.Join(rimgs, "restore.log"))
				t.Fatalf("criu restore --stream: %v\n%s", err, log)
			}
			sent, err := s.Wait()
			require.NoError(t, err)
			assert.Equal(t, st.Bytes, sent, "every byte dumped was served back")
			root.verify(t)
			child.verify(t)
		})
	}
}
