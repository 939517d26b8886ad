package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/storage/storagetest"
	"github.com/cedana/cedana/sysinfo"
)

// checksummed is a process holding random data in memory that writes the data's checksum to
// before at start, and to after whenever check appears: a restore that lost or mangled a page
// shows as a different checksum.
type checksummed struct {
	pid                  int
	before, after, check string
	exited               chan struct{}
}

// checksumLoop is a checksummed process's script: bash -c checksumLoop name tick before after check bytes.
const checksumLoop = `exec 3<>"$1"; big=$(head -c "$5" /dev/urandom | base64 -w0); printf %s "$big" | md5sum >"$2"
while :; do if [ -e "$4" ]; then printf %s "$big" | md5sum >"$3"; rm -f "$4"; fi; read -t 0.1 -u 3 || :; done`

// startChecksummed starts a checksummed process holding about mb MB of base64 text made from
// random bytes, and waits for its first checksum.
func startChecksummed(t *testing.T, mb int) *checksummed {
	t.Helper()
	dir := t.TempDir()
	c := &checksummed{before: filepath.Join(dir, "sum-before"), after: filepath.Join(dir, "sum-after"), check: filepath.Join(dir, "check"), exited: make(chan struct{})}
	tick := filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	cmd := newSetsidCmd("bash", "-c", checksumLoop, "big", tick, c.before, c.after, c.check, strconv.Itoa(mb*750_000))
	require.NoError(t, cmd.Start())
	c.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() { killTree(c.pid) })
	require.Eventually(t, func() bool { data, _ := os.ReadFile(c.before); return len(data) > 32 }, time.Minute, 20*time.Millisecond)
	return c
}

// waitDumped waits until the dump has stopped the process and nothing of it is left.
func (c *checksummed) waitDumped(t *testing.T) {
	t.Helper()
	<-c.exited
	require.Eventually(t, func() bool { reapAll(c.pid); return pidGone(c.pid) }, 10*time.Second, 20*time.Millisecond)
}

// verify asks the (restored) process for its checksum and compares it with the first one.
func (c *checksummed) verify(t *testing.T) {
	t.Helper()
	_ = os.Remove(c.after)
	require.NoError(t, os.WriteFile(c.check, nil, 0o600))
	require.Eventually(t, func() bool { data, _ := os.ReadFile(c.after); return len(data) > 32 }, 30*time.Second, 20*time.Millisecond)
	want, _ := os.ReadFile(c.before)
	got, _ := os.ReadFile(c.after)
	assert.Equal(t, string(want), string(got), "memory restored intact")
}

// streamOut is the JSON of a dump or restore, with the notes.
type streamOut struct {
	Path  string `json:"path"`
	Pid   int    `json:"pid"`
	Stats struct {
		RawBytes string   `json:"raw_bytes"`
		Notes    []string `json:"notes"`
	} `json:"stats"`
}

// TestStreamedCheckpoints: for every codec, to a local archive and to s3://, CRIU streams the
// images of a process holding 40 MB of random data into the archive, and the restore feeds them
// from the archive (or the S3 object) straight back to CRIU; the memory is intact. With a stream
// memory limit of one chunk, the images spill to a file and the result is the same, and into a
// local archive the pages go into their place as CRIU hands them over, after room left for the
// other images (adapters.PlacedNote); with streaming off, the images go through a directory.
func TestStreamedCheckpoints(t *testing.T) {
	requireE2E(t)
	srv := storagetest.Start(t)
	scratch := t.TempDir()
	env := append(srv.Env(), "CEDANA_CHECKPOINT_TEMP_DIR="+scratch)
	d := startDaemon(t, cedanaBin, env...)
	spill := startDaemon(t, cedanaBin, append(env, "CEDANA_CHECKPOINT_STREAM_MEMORY_LIMIT=16777216")...)
	off := startDaemon(t, cedanaBin, append(env, "CEDANA_CHECKPOINT_STREAM_IMAGES=false")...)
	type tc struct {
		name, codec string
		s3          bool
		d           *daemon
		streamed    bool
		placed      bool
	}
	var cases []tc
	for _, codec := range []string{"tar", "gzip", "lz4", "zlib", "zstd"} {
		cases = append(cases, tc{codec, codec, false, d, true, false}, tc{codec + "-s3", codec, true, d, true, false})
	}
	cases = append(cases, tc{"zstd-spill", "zstd", false, spill, true, true}, tc{"lz4-spill", "lz4", false, spill, true, true},
		tc{"lz4-s3-spill", "lz4", true, spill, true, false}, tc{"zstd-off", "zstd", false, off, false, false})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := startChecksummed(t, 40)
			dir := t.TempDir()
			if c.s3 {
				dir = "s3://" + srv.Bucket + "/stream"
			}
			r := c.d.cli("dump", "process", strconv.Itoa(w.pid), "--dir", dir, "--name", "strm-"+c.name, "--compression", c.codec, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var out streamOut
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
			raw, _ := strconv.ParseInt(out.Stats.RawBytes, 10, 64)
			assert.Greater(t, raw, int64(30_000_000), "the images hold the data")
			if c.streamed {
				assert.Contains(t, out.Stats.Notes, adapters.StreamedNote)
			} else {
				assert.NotContains(t, out.Stats.Notes, adapters.StreamedNote)
			}
			assert.Equal(t, c.placed, contains(out.Stats.Notes, adapters.PlacedNote), "dump notes: %v", out.Stats.Notes)
			if !c.s3 {
				assert.Len(t, entries(dir), 1, "one archive, nothing else")
			}
			w.waitDumped(t)

			r = c.d.cli("restore", "process", "--path", out.Path, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var rout streamOut
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rout), r.stdout)
			t.Cleanup(func() { killTree(rout.Pid) })
			assert.Equal(t, c.streamed, contains(rout.Stats.Notes, adapters.RestoreFromNote), "restore notes: %v", rout.Stats.Notes)
			w.verify(t)
			assert.Empty(t, entries(scratch), "no temporary images or spill files are left")
		})
	}
}

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestCRIUKilledMidStream: CRIU killed while it streams the pages of a 512 MiB workload into a
// zstd archive fails the dump with the reason; the workload runs on, untraced, and nothing is left
// behind or recorded. The workload then dumps and restores normally.
func TestCRIUKilledMidStream(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin, "CEDANA_CRIU_LOG_LEVEL=4")
	w := startMemCounter(t, false, 512)
	memhog := childNamed(t, w.pid, "memhog")

	wait := d.cliAsync("dump", "process", strconv.Itoa(w.pid), "--name", "strm-victim", "--compression", "zstd")
	// CRIU logs page transfers (at level 4) as it streams the pages. The root shell's pages come
	// first and are few: kill CRIU only once it streams memhog's, while its parasite sits in the
	// daemon loop that returns the task to its own code when CRIU's socket closes (killed while
	// CRIU injects or cures a parasite, the task may die with it).
	log := filepath.Join(d.ckDir, ".strm-victim.images", "dump.log")
	memhogPages := regexp.MustCompile(`Dumping pages \(type: \d+ pid: ` + strconv.Itoa(memhog) + `\)`)
	criuPID := awaitMoment(t, d, "CRIU streaming memhog's pages", func() bool {
		data, _ := os.ReadFile(log)
		at := memhogPages.FindIndex(data)
		return at != nil && bytes.Count(data[at[1]:], []byte("page-xfer")) > 10
	})
	require.NoError(t, unix.Kill(criuPID, unix.SIGKILL))
	r := wait()
	requireOneLineError(t, r, "criu dump: criu died without answering: killed by signal SIGKILL", "the workload runs again")

	require.True(t, w.running(), "the workload was not killed")
	for _, pid := range []int{w.pid, memhog} {
		state, tracer := procStatus(t, pid)
		assert.Contains(t, "RS", state, "PID %d is neither stopped nor a zombie", pid)
		assert.Equal(t, 0, tracer, "PID %d is traced by no one", pid)
	}
	assert.Empty(t, listCheckpoints(t, d), "nothing is recorded")
	assert.Empty(t, entries(d.ckDir), "nothing is left in the checkpoint directory")

	path := dump(t, d, w, "--name", "strm-again", "--compression", "zstd")
	w.waitExited(t)
	dumped := requireStopped(t, w.counter)
	reapAll(memhog)
	restore(t, d, w, path)
	requireCounting(t, w.counter, dumped)
}

// TestStreamedDumpRecordsTree: a streamed dump of a tree of three processes, one of them
// multi-threaded (memhog), records every PID of the tree and no thread's, in the catalog and in
// the archive's checkpoint.json, as a dump through a directory does: both read CRIU's pstree.
func TestStreamedDumpRecordsTree(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	w := startMemCounter(t, true, 8)
	memhog := childNamed(t, w.pid, "memhog")
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(memhog), "task"))
	require.NoError(t, err)
	require.Greater(t, len(tasks), 1, "memhog has threads")
	tree := sysinfo.Tree(w.pid)
	require.Len(t, tree, 3)
	want := []int32{int32(tree[0])}
	for _, p := range tree[1:] {
		want = append(want, int32(p))
	}
	slices.Sort(want[1:])

	for _, codec := range []string{"zstd", "none"} {
		t.Run(codec, func(t *testing.T) {
			r := d.cli("dump", "process", strconv.Itoa(w.pid), "--leave-running", "--name", "strm-tree-"+codec, "--compression", codec, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var out struct {
				streamOut
				ID string `json:"checkpoint_id"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
			assert.Equal(t, codec != "none", contains(out.Stats.Notes, adapters.StreamedNote), "notes: %v", out.Stats.Notes)

			r = d.cli("checkpoint", "inspect", out.ID, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var entry struct {
				Checkpoint struct {
					Pids []int32 `json:"pids"`
				} `json:"checkpoint"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &entry), r.stdout)
			assert.Equal(t, want, entry.Checkpoint.Pids, "checkpoint inspect lists the tree")

			meta := out.Path
			if codec != "none" {
				f, err := os.Open(out.Path)
				require.NoError(t, err)
				defer f.Close()
				meta = t.TempDir()
				_, err = archive.Extract(f, meta, 2)
				require.NoError(t, err)
			}
			ck, err := checkpoint.Read(meta)
			require.NoError(t, err)
			assert.Equal(t, want, ck.GetPids(), "checkpoint.json lists the tree")
		})
	}
}

// startChecksummedTree starts a checksummed process holding about mb MB whose child is another
// one, holding as much: CRIU dumps a pages image for each.
func startChecksummedTree(t *testing.T, mb int) (root, child *checksummed) {
	t.Helper()
	dir := t.TempDir()
	mk := func(p string) *checksummed {
		return &checksummed{before: filepath.Join(dir, p+"-before"), after: filepath.Join(dir, p+"-after"), check: filepath.Join(dir, p+"-check")}
	}
	root, child = mk("root"), mk("child")
	root.exited = make(chan struct{})
	tick := filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	size := strconv.Itoa(mb * 750_000)
	script := `bash -c "$0" x "$1" "$6" "$7" "$8" "$5" & ` + checksumLoop
	cmd := newSetsidCmd("bash", "-c", script, checksumLoop, tick, root.before, root.after, root.check, size, child.before, child.after, child.check)
	require.NoError(t, cmd.Start())
	root.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(root.exited) }()
	t.Cleanup(func() { killTree(root.pid) })
	for _, c := range []*checksummed{root, child} {
		require.Eventually(t, func() bool { data, _ := os.ReadFile(c.before); return len(data) > 32 }, time.Minute, 20*time.Millisecond)
	}
	// The child, once its parent is gone, is ours to reap (the tests' process is a subreaper).
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", root.pid, root.pid))
	require.NoError(t, err)
	// The first child is the other process (the root's own pipelines may still be running).
	fields := strings.Fields(string(kids))
	require.NotEmpty(t, fields, "the root has a child")
	child.pid, err = strconv.Atoi(fields[0])
	require.NoError(t, err)
	return root, child
}

// TestStreamedTreeCheckpoints: a process and its child, each holding 24 MB of random data, dumped
// into an archive whose pages are compressed while CRIU dumps where the codec allows it and the
// memory limit leaves room (else, beyond a one-chunk limit, the images spill and, as random data
// does not shrink enough to be worth spilling a second time encoded, the archive writer
// compresses them at the end), restore with both memories intact.
func TestStreamedTreeCheckpoints(t *testing.T) {
	requireE2E(t)
	scratch := t.TempDir()
	roomy := startDaemon(t, cedanaBin, "CEDANA_CHECKPOINT_TEMP_DIR="+scratch)
	tight := startDaemon(t, cedanaBin, "CEDANA_CHECKPOINT_TEMP_DIR="+scratch, "CEDANA_CHECKPOINT_STREAM_MEMORY_LIMIT=16777216")
	for _, tc := range []struct {
		codec   string
		d       *daemon
		overlap bool
	}{{"zstd", roomy, true}, {"lz4", roomy, true}, {"gzip", roomy, true}, {"zstd", tight, false}, {"lz4", tight, false}, {"zlib", tight, false}} {
		name := tc.codec
		if tc.d == tight {
			name += "-spilled"
		}
		t.Run(name, func(t *testing.T) {
			d := tc.d
			root, child := startChecksummedTree(t, 24)
			dir := t.TempDir()
			r := d.cli("dump", "process", strconv.Itoa(root.pid), "--dir", dir, "--name", "ovl-tree-"+name, "--compression", tc.codec, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var out streamOut
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
			assert.Contains(t, out.Stats.Notes, adapters.StreamedNote)
			assert.Equal(t, tc.overlap, contains(out.Stats.Notes, adapters.OverlapNote), "dump notes: %v", out.Stats.Notes)
			<-root.exited
			require.Eventually(t, func() bool { reapAll(root.pid, child.pid); return pidGone(root.pid) && pidGone(child.pid) }, 10*time.Second, 20*time.Millisecond)

			r = d.cli("restore", "process", "--path", out.Path, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var rout streamOut
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rout), r.stdout)
			t.Cleanup(func() { killTree(rout.Pid) })
			assert.True(t, contains(rout.Stats.Notes, adapters.RestoreFromNote), "restore notes: %v", rout.Stats.Notes)
			root.verify(t)
			child.verify(t)

			r = d.cli("checkpoint", "inspect", "-t", "ps", "--path", out.Path)
			require.Equal(t, 0, r.code, r.String())
			assert.Equal(t, 2, strings.Count(r.stdout, "bash"), "both processes are in the archive's tree: %s", r.stdout)
			assert.Empty(t, entries(scratch), "no temporary images or spill files are left")
		})
	}
}

// TestStreamedCompressedLater: a job holding 96 MiB of compressible memory, dumped by a daemon
// whose stream memory is one chunk (16 MiB), with zstd and with lz4: the encoders find no room
// while CRIU dumps, so they compress the pages once it is done, their output in the spill file
// (the daemon's log counts them as compressed_after, none as compressed ahead, and the dump makes
// no claim to have compressed while CRIU dumped); the job restores straight from the archive with
// its whole memory intact, and nothing is left in the temporary directory.
func TestStreamedCompressedLater(t *testing.T) {
	requireE2E(t)
	for _, codec := range []string{"zstd", "lz4"} {
		t.Run(codec, func(t *testing.T) {
			scratch := t.TempDir()
			d := startDaemon(t, cedanaBin, "CEDANA_CHECKPOINT_TEMP_DIR="+scratch, "CEDANA_CHECKPOINT_STREAM_MEMORY_LIMIT=16777216")
			w := runSummed(t, d, "later-"+codec, 96, "-mode", "compressible")
			pid := inspectJob(t, d, w.jid).PID
			r := d.cli("dump", "job", w.jid, "--compression", codec, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var out streamOut
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
			assert.Contains(t, out.Stats.Notes, adapters.StreamedNote)
			assert.NotContains(t, out.Stats.Notes, adapters.OverlapNote)
			require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
			line := regexp.MustCompile(`msg="streamed images archived".*`).FindString(d.log.String())
			require.NotEmpty(t, line, "the capture's log line")
			assert.Regexp(t, `compressed_ahead=0 compressed_after=[1-9][0-9]{7,}`, line, "the pages compressed after CRIU was done")

			r = d.cli("restore", "job", w.jid, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var rout streamOut
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rout), r.stdout)
			assert.True(t, contains(rout.Stats.Notes, adapters.RestoreFromNote), "restore notes: %v", rout.Stats.Notes)
			w.verify(t, rout.Pid)
			assert.Empty(t, entries(scratch), "no spill or image files left")
		})
	}
}

// TestStreamNeedsRoom: a dump that may need more disk than there is when streamed — a job of 96
// MiB and stream memory for 16 of them, so that about 80 MiB would wait in the spill file, in
// checkpoint.temp_dir, until the archive is complete — is not streamed: CRIU writes the images into
// a directory, where a full disk would stop CRIU and resume the workload rather than fail the
// archive after CRIU had released the workload. Whether temp_dir is a file system of its own, too
// small for the spill, or the checkpoint's, too small for the spill and the archive together. The
// note says why, and the job restores with its whole memory intact.
func TestStreamNeedsRoom(t *testing.T) {
	requireE2E(t)
	for _, c := range []struct {
		name     string
		size     string // of the tmpfs for temp_dir
		ckDir    bool   // the checkpoint goes onto the same tmpfs
		question string
	}{
		{"small temp_dir", "4m", false, "(checkpoint.temp_dir) has 4 MiB free, less than the spill file"},
		{"temp_dir on the checkpoint's file system", "160m", true, "the workload's memory and the spill file of its part beyond checkpoint.stream_memory_limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := t.TempDir()
			require.NoError(t, unix.Mount("tmpfs", fs, "tmpfs", 0, "size="+c.size))
			t.Cleanup(func() { _ = unix.Unmount(fs, unix.MNT_DETACH) })
			temp := filepath.Join(fs, "tmp")
			require.NoError(t, os.Mkdir(temp, 0o700))
			d := startDaemon(t, cedanaBin, "CEDANA_CHECKPOINT_TEMP_DIR="+temp, "CEDANA_CHECKPOINT_STREAM_MEMORY_LIMIT=16777216")
			w := runSummed(t, d, "room", 96, "-mode", "compressible")
			pid := inspectJob(t, d, w.jid).PID
			args := []string{"dump", "job", w.jid, "--compression", "zstd", "-o", "json"}
			if c.ckDir {
				args = append(args, "--dir", filepath.Join(fs, "ck"))
			}
			r := d.cli(args...)
			require.Equal(t, 0, r.code, r.String())
			var out streamOut
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
			assert.NotContains(t, out.Stats.Notes, adapters.StreamedNote)
			declined := ""
			for _, n := range out.Stats.Notes {
				if strings.HasPrefix(n, adapters.NotStreamedNote) {
					declined = n
				}
			}
			assert.Contains(t, declined, c.question, "notes: %v", out.Stats.Notes)
			require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
			assert.Empty(t, entries(temp), "nothing is left in temp_dir")

			// The archive holds the pages in parts, not in restore order: the restore keeps some in
			// temp_dir until CRIU asks for them.
			require.NoError(t, unix.Mount("", fs, "", unix.MS_REMOUNT, "size=160m"))
			r = d.cli("restore", "job", w.jid, "-o", "json")
			require.Equal(t, 0, r.code, r.String())
			var rout streamOut
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rout), r.stdout)
			w.verify(t, rout.Pid)
			assert.Empty(t, entries(temp), "nothing is left in temp_dir")
		})
	}
}
