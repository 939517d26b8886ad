package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/storage/storagetest"
)

// TestS3ServerDiesMidUpload: the S3 server is killed while a dump is being uploaded to it. The
// dump fails soon with an error that says the upload failed and where the stopped workload's
// images are kept; those images restore and the workload counts on; nothing is recorded, and
// once the server is back nothing of the upload is left in the bucket.
func TestS3ServerDiesMidUpload(t *testing.T) {
	requireE2E(t)
	for _, codec := range []string{"zstd", "lz4"} {
		t.Run(codec, func(t *testing.T) {
			srv := storagetest.Start(t)
			scratch := t.TempDir()
			d := startDaemon(t, cedanaBin, append(srv.Env(), "CEDANA_CHECKPOINT_TEMP_DIR="+scratch)...)
			w, memhog := startBigCounter(t, 384)

			dest := "s3://" + srv.Bucket + "/faults"
			name := "mid-upload-" + codec
			dumping := startCLI(t, d, "dump", "process", strconv.Itoa(w.pid), "--dir", dest, "--name", name, "--compression", codec)

			// Kill the server once the first parts (16 MiB each) have reached its disk: the archive
			// is far larger, so the upload is then in full swing.
			const arrived = 40 << 20
			require.Eventually(t, func() bool { return dirBytes(srv.Dir) >= arrived || dumping.done() }, time.Minute, 5*time.Millisecond)
			if dumping.done() {
				t.Fatalf("the dump ended before %d MiB reached the server: %s", arrived>>20, dumping.result())
			}
			srv.Kill()
			killed := time.Now()
			r := dumping.wait(t, 2*time.Minute)
			took := time.Since(killed)
			t.Logf("dump failed %v after the server was killed: %s", took.Round(time.Millisecond), r.stderr)

			kept := filepath.Join(scratch, "cedana-kept-"+name)
			requireOneLineError(t, r, "cedana: error: the upload failed: ", "S3 endpoint "+srv.Endpoint,
				"upload to "+dest+"/"+name+".tar", "the workload was checkpointed and stopped", "kept at "+kept)
			assert.Less(t, took, 15*time.Second, "the dump failed in bounded time")
			require.FileExists(t, filepath.Join(kept, "checkpoint.json"))
			assert.Equal(t, []string{"cedana-kept-" + name}, entries(scratch), "only the kept images are left")

			// Nothing recorded; nothing left in the bucket once the server is back.
			r = d.cli("checkpoint", "list", "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			assert.NotContains(t, r.stdout, name)
			srv.Restart()
			requireBucketEmpty(t, srv)

			// The kept images restore, and the workload counts on from where it was dumped.
			w.waitExited(t)
			dumped := requireStopped(t, w.counter)
			require.Eventually(t, func() bool { reapAll(memhog); return pidGone(memhog) }, 10*time.Second, 20*time.Millisecond)
			r = d.cli("restore", "process", "--path", kept, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var out dumpStats
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
			w.restored = out.Pid
			requireCounting(t, w.counter, dumped)
			assert.False(t, pidGone(memhog), "memhog, with its memory, was restored too")
		})
	}
}

// startBigCounter starts a counting workload whose root also has a memhog child holding mib MiB
// of random data (see startMemCounter), so that its checkpoint is large and incompressible. It
// returns the workload and memhog's PID.
func startBigCounter(t *testing.T, mib int) (*workload, int) {
	t.Helper()
	w := startMemCounter(t, false, mib)
	return w, readCounter(w.counter + ".ready") // memhog writes its PID there
}

// dirBytes is the total size of the regular files under dir.
func dirBytes(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// requireBucketEmpty asserts that the server's bucket holds no object and no unfinished
// multipart upload, polling for a while: cleanup may still be on its way.
func requireBucketEmpty(t *testing.T, srv *storagetest.Server) {
	t.Helper()
	var left []string
	ok := assert.Eventually(t, func() bool {
		left = bucketContents(t, srv)
		return len(left) == 0
	}, time.Minute, 100*time.Millisecond)
	if !ok {
		t.Errorf("left in bucket %s: %q", srv.Bucket, left)
	}
}

// bucketContents lists what the server holds for the bucket: files of objects and of unfinished
// uploads alike.
func bucketContents(t *testing.T, srv *storagetest.Server) []string {
	t.Helper()
	var files []string
	root := filepath.Join(srv.Dir, srv.Bucket)
	_ = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return nil
	})
	return files
}

// asyncCLI is a CLI invocation running in the background.
type asyncCLI struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	exited         chan struct{}
	err            error
}

// startCLI starts the daemon's binary as its client without waiting for it.
func startCLI(t *testing.T, d *daemon, args ...string) *asyncCLI {
	t.Helper()
	a := &asyncCLI{cmd: exec.Command(d.bin, args...), exited: make(chan struct{})}
	a.cmd.Env = d.env
	a.cmd.Stdout, a.cmd.Stderr = &a.stdout, &a.stderr
	require.NoError(t, a.cmd.Start())
	go func() { a.err = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		if !a.done() {
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
	})
	return a
}

func (a *asyncCLI) done() bool {
	select {
	case <-a.exited:
		return true
	default:
		return false
	}
}

// result is the finished invocation's outcome; call it only once done.
func (a *asyncCLI) result() result {
	code := 0
	var exitErr *exec.ExitError
	if errors.As(a.err, &exitErr) {
		code = exitErr.ExitCode()
	}
	return result{stdout: a.stdout.String(), stderr: a.stderr.String(), code: code}
}

// wait waits up to timeout for the invocation to end.
func (a *asyncCLI) wait(t *testing.T, timeout time.Duration) result {
	t.Helper()
	select {
	case <-a.exited:
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		<-a.exited
		t.Fatalf("%v did not end within %v", a.cmd.Args, timeout)
	}
	require.NotErrorIs(t, a.err, exec.ErrNotFound)
	return a.result()
}
