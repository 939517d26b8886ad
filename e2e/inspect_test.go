package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/storage/storagetest"
)

// TestInspectCheckpointImages: `checkpoint inspect -t` shows the counter's process tree and the
// FIFO it keeps open, from a directory checkpoint (by ID) and a zstd archive (by --path), as a
// table and as JSON.
func TestInspectCheckpointImages(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startCounter(t, true)
	pid := strconv.Itoa(w.pid)

	for _, codec := range []string{"none", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			r := d.cli("dump", "process", pid, "--leave-running", "--compression", codec, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var dumped struct {
				Path string `json:"path"`
				ID   string `json:"checkpoint_id"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &dumped), r.stdout)
			target := []string{dumped.ID}
			if codec != "none" {
				target = []string{"--path", dumped.Path}
			}

			r = d.cli(append([]string{"checkpoint", "inspect", "-t", "ps"}, target...)...)
			require.Equal(t, 0, r.code, r.String())
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			require.Len(t, lines, 3, r.stdout)
			assert.Regexp(t, `^PID\s+PGID\s+SID\s+COMM$`, lines[0])
			assert.Regexp(t, `^`+pid+`\s+`+pid+`\s+`+pid+`\s+bash$`, lines[1], "the root leads its session and group")
			assert.Regexp(t, `^  \d+\s+`+pid+`\s+`+pid+`\s+bash$`, lines[2], "the counting subshell, under its parent")

			r = d.cli(append([]string{"checkpoint", "inspect", "-t", "fd"}, target...)...)
			require.Equal(t, 0, r.code, r.String())
			assert.Regexp(t, regexp.MustCompile(`(?m)^`+pid+`\s+3\s+FIFO\s+`), r.stdout, "the tick FIFO it keeps open on fd 3")
			assert.Regexp(t, regexp.MustCompile(`(?m)^`+pid+`\s+cwd\s+-\s+/`), r.stdout)

			r = d.cli(append([]string{"checkpoint", "inspect", "-t", "ps", "-o", "json"}, target...)...)
			require.Equal(t, 0, r.code, r.String())
			var tree struct {
				PID      int    `json:"pid"`
				Comm     string `json:"comm"`
				Children []struct {
					PID int `json:"pid"`
				} `json:"children"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &tree), r.stdout)
			assert.Equal(t, w.pid, tree.PID)
			assert.Len(t, tree.Children, 1)

			for _, kind := range []string{"mem", "rss", "sk"} {
				r = d.cli(append([]string{"checkpoint", "inspect", "-t", kind}, target...)...)
				require.Equal(t, 0, r.code, r.String())
			}
		})
	}
	r := d.cli("checkpoint", "inspect", "--path", d.dir, "-t", "ps")
	requireOneLineError(t, r, "no CRIU image pstree.img")
}

// TestS3DumpWithoutCompression: a dump to s3:// without --compression uploads a plain tar,
// <name>.tar, says so in --stats, and restores.
func TestS3DumpWithoutCompression(t *testing.T) {
	requireE2E(t)
	srv := storagetest.Start(t)
	d := startDaemon(t, cedanaBin, append(srv.Env(), "CEDANA_CHECKPOINT_TEMP_DIR="+t.TempDir())...)
	w := startCounter(t, false)

	dest := "s3://" + srv.Bucket + "/plain"
	r := d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", dest, "--name", "storage-tar", "--stats")
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "Dumped to "+dest+"/storage-tar.tar\n")
	assert.Contains(t, r.stdout, "note: compression none: an s3:// checkpoint is one object, uploaded as an uncompressed tar")
	assert.Equal(t, []string{"plain/storage-tar.tar"}, bucketContents(t, srv))
	assert.Contains(t, d.log.String(), "uploaded as an uncompressed tar", "the daemon's log says so too")
	w.waitExited(t)
	dumped := requireStopped(t, w.counter)

	r = d.cli("restore", "process", "--path", dest+"/storage-tar.tar", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var out dumpStats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	w.restored = out.Pid
	requireCounting(t, w.counter, dumped)
}
