package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/storage/storagetest"
)

// dumpStats is the part of a dump's or restore's JSON the archive tests read.
type dumpStats struct {
	Path  string `json:"path"`
	Pid   int    `json:"pid"`
	Stats struct {
		Phases      map[string]string `json:"phases"`
		RawBytes    string            `json:"raw_bytes"`
		StoredBytes string            `json:"stored_bytes"`
		Frozen      string            `json:"frozen"`
	} `json:"stats"`
}

// TestCompressedCheckpoints: every codec writes one archive that restores, recognised by its
// content even without its extension.
func TestCompressedCheckpoints(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	for codec, ext := range map[string]string{"tar": ".tar", "gzip": ".tar.gz", "lz4": ".tar.lz4", "zlib": ".tar.zlib", "zstd": ".tar.zst"} {
		t.Run(codec, func(t *testing.T) {
			w := startCounter(t, false)
			dir := t.TempDir()
			r := d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", dir, "--name", "ck", "--compression", codec, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var out dumpStats
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
			assert.Equal(t, filepath.Join(dir, "ck"+ext), out.Path)
			assert.Equal(t, []string{"ck" + ext}, entries(dir), "one archive, no leftover images")
			assert.Contains(t, out.Stats.Phases, "compress")
			assert.Contains(t, out.Stats.Phases, "criu_dump")
			assert.NotEmpty(t, out.Stats.Frozen)
			raw, _ := strconv.ParseInt(out.Stats.RawBytes, 10, 64)
			stored, _ := strconv.ParseInt(out.Stats.StoredBytes, 10, 64)
			assert.Positive(t, raw)
			assert.Positive(t, stored)
			if codec != "tar" {
				assert.Less(t, stored, raw, "compressed")
			}
			w.waitExited(t)
			dumped := requireStopped(t, w.counter)

			// The format is recognised by content: restore from a name without the extension.
			plain := filepath.Join(dir, "renamed")
			require.NoError(t, os.Rename(out.Path, plain))
			r = d.cli("restore", "process", "--path", plain, "--stats")
			require.Equal(t, 0, r.code, r.String())
			w.restored = w.pid
			assert.Contains(t, r.stdout, "decompress")
			requireCounting(t, w.counter, dumped)
			assert.Equal(t, []string{"renamed"}, entries(dir), "the unpacked images were removed")
		})
	}
}

// TestCompressionBadInput: an unknown codec is refused before the workload is touched; a corrupt or
// truncated archive is refused and nothing is restored.
func TestCompressionBadInput(t *testing.T) {
	requireE2E(t)
	scratch := t.TempDir()
	d := startDaemon(t, cedanaBin, "CEDANA_CHECKPOINT_TEMP_DIR="+scratch)
	w := startCounter(t, false)
	dir := t.TempDir()
	r := d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", dir, "--compression", "brotli")
	requireOneLineError(t, r, `unknown compression "brotli"`)
	assert.Empty(t, entries(dir))
	assert.True(t, w.running())

	// A truncated archive reads well up to where it was cut: that restore fails as CRIU asks for
	// the missing images. Its workload must be gone for the restore to get that far.
	w2 := startCounter(t, false)
	path := dump(t, d, w2, "--dir", dir, "--name", "good", "--compression", "zstd")
	w2.waitExited(t)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	truncated := filepath.Join(dir, "truncated.tar.zst")
	require.NoError(t, os.WriteFile(truncated, data[:len(data)/2], 0o600))
	garbage := filepath.Join(dir, "garbage.tar.zst")
	require.NoError(t, os.WriteFile(garbage, []byte(strings.Repeat("not an archive ", 100)), 0o600))
	for _, bad := range []string{truncated, garbage} {
		r = d.cli("restore", "process", "--path", bad)
		requireOneLineError(t, r, "cannot be read")
	}
	assert.Empty(t, entries(scratch), "no unpacked images left behind")
	require.Eventually(t, func() bool { return pidGone(w2.pid) }, 10*time.Second, 20*time.Millisecond, "nothing of the truncated checkpoint runs")
	assert.True(t, w.running())
}

// TestS3Checkpoints: a dump to s3:// is streamed to a real S3 server (versitygw) and restored from
// it; S3 failures are clear, leave the workload running and record nothing.
func TestS3Checkpoints(t *testing.T) {
	requireE2E(t)
	srv := storagetest.Start(t)
	bucket := srv.Bucket
	scratch := t.TempDir()
	d := startDaemon(t, cedanaBin, append(srv.Env(), "CEDANA_CHECKPOINT_TEMP_DIR="+scratch)...)
	w := startCounter(t, false)

	dest := "s3://" + bucket + "/ckpts"
	r := d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", dest, "--name", "remote", "--compression", "zstd", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var out dumpStats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Equal(t, dest+"/remote.tar.zst", out.Path)
	assert.Contains(t, out.Stats.Phases, "upload")
	assert.Empty(t, entries(scratch), "nothing staged locally after the upload")
	w.waitExited(t)
	dumped := requireStopped(t, w.counter)

	r = d.cli("restore", "process", "--path", out.Path, "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var rout dumpStats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rout), r.stdout)
	w.restored = rout.Pid
	assert.Contains(t, rout.Stats.Phases, "download")
	requireCounting(t, w.counter, dumped)
	assert.Empty(t, entries(scratch), "the downloaded images were removed")

	// Faults: a missing bucket, bad credentials, an unreachable endpoint. The workload keeps running.
	w2 := startCounter(t, false)
	r = d.cli("dump", "process", strconv.Itoa(w2.pid), "--dir", "s3://no-such-bucket/x", "--compression", "zstd")
	requireOneLineError(t, r, "no-such-bucket")
	d2 := startDaemon(t, cedanaBin, append(srv.Env(), "AWS_SECRET_ACCESS_KEY=wrong")...) // the last value counts
	r = d2.cli("dump", "process", strconv.Itoa(w2.pid), "--dir", dest, "--compression", "zstd")
	requireOneLineError(t, r, "credentials")
	d3 := startDaemon(t, cedanaBin, append(srv.Env(), "AWS_ENDPOINT_URL=http://127.0.0.1:1")...)
	r = d3.cli("dump", "process", strconv.Itoa(w2.pid), "--dir", dest, "--compression", "zstd")
	requireOneLineError(t, r, "127.0.0.1:1")
	assert.True(t, w2.running(), "S3 failures leave the workload running")
	r = d.cli("checkpoint", "list", "-o", "json")
	assert.NotContains(t, r.stdout, "no-such-bucket", "nothing recorded for failed dumps")
	r = d.cli("restore", "process", "--path", dest+"/missing.tar.zst")
	requireOneLineError(t, r, "missing.tar.zst")
}

// TestCompressedLargeProcess: with streaming off, a process with 48 MB of data in memory, dumped
// with zstd while CRIU writes (its pages image is archived in parts as it grows), restores with
// that data intact. (Streamed dumps: TestStreamedCheckpoints.)
func TestCompressedLargeProcess(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin, noStream...)
	w := startChecksummed(t, 48)
	dir := t.TempDir()
	r := d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", dir, "--name", "big", "--compression", "zstd", "-o", "json")
	require.Equal(t, 0, r.code, r.String())
	var out dumpStats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	raw, _ := strconv.ParseInt(out.Stats.RawBytes, 10, 64)
	assert.Greater(t, raw, int64(45_000_000), "the images hold the data (more than one 32 MiB part)")
	w.waitDumped(t)

	r = d.cli("restore", "process", "--path", out.Path)
	require.Equal(t, 0, r.code, r.String())
	w.verify(t)
}

// TestProgressBar: on a terminal, a compressed dump and its restore show progress bars; on a pipe,
// nothing.
func TestProgressBar(t *testing.T) {
	requireE2E(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script (util-linux/bsdutils) is needed to give the CLI a terminal: %v", err)
	}
	d := startDaemon(t, cedanaBin)
	dir := t.TempDir()
	// A process big enough (about 100 MB of memory) for the phases to last a few polls.
	tick, ready := filepath.Join(dir, "tick"), filepath.Join(dir, "ready")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	cmd := newSetsidCmd("bash", "-c", `exec 3<>"$1"; big=$(head -c 48000000 /dev/urandom | base64 -w0); : >"$2"; while :; do read -t 1 -u 3 || :; done`, "big", tick, ready)
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	t.Cleanup(func() { killTree(pid) })
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 60*time.Second, 50*time.Millisecond)

	env := append(append([]string{}, d.env...), "CEDANA_PROGRESS_DELAY=0s")
	onTerminal := func(args ...string) string {
		cmd := exec.Command(script, "-qec", cedanaBin+" "+strings.Join(args, " "), "/dev/null")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	archivePath := filepath.Join(dir, "bar.tar.zst")
	out := onTerminal("dump", "process", strconv.Itoa(pid), "--dir", dir, "--name", "bar", "--compression", "zstd")
	assert.Contains(t, out, "archive", "a progress bar on a terminal")
	assert.Contains(t, out, "Dumped to "+archivePath)
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	out = onTerminal("restore", "process", "--path", archivePath)
	assert.Contains(t, out, "decompress")
	assert.Contains(t, out, "Restored, PID:")

	// On a pipe: no bar.
	killTree(pid)
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	r := runCmd(t, cedanaBin, env, "restore", "process", "--path", archivePath)
	require.Equal(t, 0, r.code, r.String())
	assert.Empty(t, r.stderr, "no progress bar on a pipe")
	killTree(pid)
}
