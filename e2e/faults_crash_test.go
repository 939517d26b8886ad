package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/sysinfo"
)

// pagesMiB is how much of the pages image CRIU must have written before a fault is injected "while
// CRIU writes pages": well inside the workloads' memory, so that the fault lands in the middle.
const pagesMiB = 64

var fullLogRe = regexp.MustCompile(`full log: (\S+)`)

// TestCRIUKilledMidDump: CRIU is SIGKILLed while it writes the pages of a 512 MiB process. The
// kernel ends CRIU's ptrace hold with it, and the parasite CRIU had put in the process returns it
// to its own code when CRIU's socket closes: the workload runs on, neither stopped nor traced.
// Nothing is recorded and nothing is left in the checkpoint directory; the one-line error says
// that CRIU was killed, that the workload runs, and where CRIU's whole log is kept. No claim is
// left either: the tree dumps again at once, and that checkpoint restores. CRIU logs every step
// (criu.log_level 4), so the kept log shows how far it got.
func TestCRIUKilledMidDump(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin, "CEDANA_CRIU_LOG_LEVEL=4")
	w := startMemCounter(t, false, 512)
	memhog := childNamed(t, w.pid, "memhog")

	wait := d.cliAsync("dump", "process", strconv.Itoa(w.pid), "--name", "victim")
	criuPID := awaitMoment(t, d, "CRIU writing pages", func() bool { return writingPages(dumpState{images: filepath.Join(d.ckDir, "victim")}) })
	require.NoError(t, unix.Kill(criuPID, unix.SIGKILL))
	r := wait()
	requireOneLineError(t, r, "criu dump: criu died without answering: killed by signal SIGKILL", "the workload runs again")
	m := fullLogRe.FindStringSubmatch(r.stderr)
	require.NotNil(t, m, "the error names the kept log: %s", r.stderr)
	t.Cleanup(func() { os.Remove(m[1]) })
	kept, err := os.ReadFile(m[1])
	require.NoError(t, err, "the log the error names exists")
	assert.Contains(t, string(kept), "page-xfer", "the whole log, up to the pages CRIU was writing")

	require.True(t, w.running(), "the workload was not killed")
	for _, pid := range []int{w.pid, memhog} {
		state, tracer := procStatus(t, pid)
		assert.Contains(t, "RS", state, "PID %d is neither stopped nor a zombie", pid)
		assert.Equal(t, 0, tracer, "PID %d is traced by no one", pid)
	}
	before := readCounter(w.counter)
	require.Eventually(t, func() bool { return readCounter(w.counter) >= before+3 }, 5*time.Second, 20*time.Millisecond,
		"the workload counts on")

	assert.Empty(t, listCheckpoints(t, d), "nothing is recorded")
	assert.Empty(t, entries(d.ckDir), "nothing is left in the checkpoint directory")

	path := dump(t, d, w, "--name", "again")
	w.waitExited(t)
	dumped := requireStopped(t, w.counter)
	reapAll(memhog)
	restore(t, d, w, path)
	requireCounting(t, w.counter, dumped)
}

// TestDaemonKilledMidDump: the daemon is SIGKILLed at several moments of a dump and started again
// on the same database. CRIU outlives it: before the dump is done it finds nobody to answer its
// post-dump notification and resumes the workload; once the daemon has answered (and recorded the
// dump as done in its journal), it stops the workload. Whatever the moment, the workload runs on
// XOR a complete checkpoint of it is listed and restores, under its job when it was one; nothing
// half-written is listed or left behind, and nothing stops the workload from being dumped again.
func TestDaemonKilledMidDump(t *testing.T) {
	requireE2E(t)
	const mib = 256
	moments := []struct {
		name        string
		job         bool
		compression string
		env         []string
		at          func(dumpState) bool
		want        string // "runs", "checkpoint", or "" when either is right
	}{
		{name: "as CRIU starts", at: func(dumpState) bool { return true }, want: "runs"},
		{name: "while CRIU writes pages", at: writingPages, want: "runs"},
		// The journal's line comes just before the daemon answers CRIU: CRIU may or may not hear it.
		{name: "as the dump is done", at: dumpDone},
		{name: "once CRIU has stopped the dumped workload", at: workloadStopped, want: "checkpoint"},
		// Through a directory (streaming off), the journal makes a complete checkpoint of what CRIU
		// finished; streamed, the images live in the daemon until the archive is complete.
		{name: "while a job's compressed dump writes pages", job: true, compression: "zstd", env: noStream, at: writingPages, want: "runs"},
		{name: "while a job's stopped workload is archived", job: true, compression: "zstd", env: noStream, at: workloadStopped, want: "checkpoint"},
		{name: "while a job's streamed dump hands over pages", job: true, compression: "zstd", env: []string{"CEDANA_CRIU_LOG_LEVEL=4"}, at: streamingPages, want: "runs"},
	}
	for _, m := range moments {
		t.Run(m.name, func(t *testing.T) {
			d := startDaemon(t, cedanaBin, m.env...)
			var target []string
			var pid int
			var w *workload
			var counter string
			jid := "crash-job"
			if m.job {
				pid, counter = managedMemCounter(t, d, jid, mib)
				target = []string{"job", jid}
			} else {
				w = startMemCounter(t, false, mib)
				pid, counter = w.pid, w.counter
				target = []string{"process", strconv.Itoa(pid)}
			}
			memhog := childNamed(t, pid, "memhog")
			state := dumpState{d: d, images: filepath.Join(d.ckDir, "crash"), logFrom: len(d.log.String()), pid: pid}
			args := append(append([]string{"dump"}, target...), "--name", "crash")
			if m.compression != "" {
				state.images = filepath.Join(d.ckDir, ".crash.images")
				args = append(args, "--compression", m.compression)
			}

			wait := d.cliAsync(args...)
			criuPID := awaitMoment(t, d, m.name, func() bool { return m.at(state) })
			d.kill()
			r := wait()
			d.restart()
			// CRIU outlived its daemon; as an orphan it is re-parented to us (a subreaper). So are a
			// job's processes, the dead daemon's children.
			require.Eventually(t, func() bool { reapAll(criuPID); return pidGone(criuPID) }, time.Minute, 10*time.Millisecond,
				"CRIU %d did not finish after its daemon died", criuPID)

			// The restarted daemon settles the dump, at once or when CRIU has exited.
			var outcome string
			var list []catalogEntry
			var left []string
			settled := func() bool {
				reapAll(pid, memhog)
				var err error
				if list, err = catalog(d); err != nil {
					return false
				}
				left = entries(d.ckDir)
				if sysinfo.Alive(pid, 0) {
					outcome = "runs"
					return len(list) == 0 && len(left) == 0
				}
				outcome = "checkpoint"
				return len(list) == 1 && len(left) == 1 && left[0] == filepath.Base(list[0].Path)
			}
			if !assert.Eventually(t, settled, 30*time.Second, 20*time.Millisecond) {
				t.Fatalf("the workload neither runs on with nothing listed or left, nor is checkpointed with its checkpoint "+
					"alone listed and left: the workload %s; listed %v; left in %s: %v", outcome, list, d.ckDir, left)
			}
			t.Logf("killed %s: the workload %s", m.name, map[string]string{"runs": "runs on", "checkpoint": "was checkpointed"}[outcome])
			if m.want != "" {
				assert.Equal(t, m.want, outcome)
			}
			if r.code == 0 {
				t.Log("the daemon had finished the dump before it was killed")
				require.Equal(t, "checkpoint", outcome, "a dump reported successful stopped the workload: %s", r)
			}
			if outcome == "runs" {
				require.True(t, sysinfo.Alive(memhog, 0), "the whole tree runs on")
				before := readCounter(counter)
				require.Eventually(t, func() bool { return readCounter(counter) >= before+3 }, 5*time.Second, 20*time.Millisecond,
					"the workload counts on")
			} else {
				ck := list[0]
				if m.job {
					assert.Equal(t, jid, ck.JID)
				}
				if info, err := os.Stat(ck.Path); assert.NoError(t, err) && info.IsDir() {
					assert.FileExists(t, filepath.Join(ck.Path, "checkpoint.json"), "the checkpoint is complete")
				}
				require.Eventually(t, func() bool { reapAll(pid, memhog); return pidGone(pid) && pidGone(memhog) },
					10*time.Second, 10*time.Millisecond)
				dumped := readCounter(counter)
				if m.job {
					r := d.cli("restore", "job", jid)
					require.Equal(t, 0, r.code, r.String())
				} else {
					restore(t, d, w, ck.Path)
				}
				requireCounting(t, counter, dumped)
			}
			r = d.cli(append(append([]string{"dump"}, target...), "--name", "after", "--leave-running")...)
			require.Equal(t, 0, r.code, "no claim or leftover blocks the next dump: %s", r)
		})
	}
}

// awaitMoment waits until the daemon runs CRIU and at reports that the moment has come, and
// returns CRIU's PID.
func awaitMoment(t *testing.T, d *daemon, moment string, at func() bool) int {
	t.Helper()
	var criuPID int
	require.Eventually(t, func() bool {
		criuPID = criuOf(d)
		return criuPID > 0 && at()
	}, time.Minute, time.Millisecond, "the dump never reached the moment %q", moment)
	return criuPID
}

// dumpState is what a moment of a dump is judged by: the daemon, the images' directory, where the
// daemon's log stood when the dump began, and the root of the tree dumped.
type dumpState struct {
	d       *daemon
	images  string
	logFrom int
	pid     int
}

// writingPages reports whether CRIU has written pagesMiB of a pages image.
func writingPages(s dumpState) bool {
	return biggestPages(s.images) >= pagesMiB<<20
}

// noStream turns image streaming off: CRIU writes the images into a directory.
var noStream = []string{"CEDANA_CHECKPOINT_STREAM_IMAGES=false"}

// streamingPages reports whether CRIU, streaming, has logged (at level 4) page transfers.
func streamingPages(s dumpState) bool {
	data, _ := os.ReadFile(filepath.Join(s.images, "dump.log"))
	return strings.Count(string(data), "page-xfer") > 10
}

// dumpDone reports whether the daemon has logged that the dump is done: its journal records the
// images as complete, in CRIU's post-dump notification, just before the daemon answers it.
func dumpDone(s dumpState) bool {
	return strings.Contains(s.d.log.String()[s.logFrom:], "dump done")
}

// workloadStopped reports whether CRIU has stopped the workload after the dump was done: CRIU
// heard the daemon's answer, and the daemon has yet to record the checkpoint in its catalog (or
// archive it).
func workloadStopped(s dumpState) bool {
	return dumpDone(s) && !sysinfo.Alive(s.pid, 0)
}

// criuOf returns the PID of the daemon's criu child, 0 when it has none.
func criuOf(d *daemon) int {
	for _, kid := range sysinfo.Children(d.cmd.Process.Pid) {
		if st, err := sysinfo.ReadStat(kid); err == nil && st.Comm == "criu" && st.State != 'Z' {
			return kid
		}
	}
	return 0
}

// childNamed returns the PID of pid's child running comm.
func childNamed(t *testing.T, pid int, comm string) int {
	t.Helper()
	for _, kid := range sysinfo.Children(pid) {
		if st, err := sysinfo.ReadStat(kid); err == nil && st.Comm == comm {
			return kid
		}
	}
	t.Fatalf("process %d has no %s child", pid, comm)
	return 0
}

// biggestPages is the size of the largest pages image in dir, 0 when there is none.
func biggestPages(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, "pages-*.img"))
	var biggest int64
	for _, f := range files {
		if info, err := os.Stat(f); err == nil && info.Size() > biggest {
			biggest = info.Size()
		}
	}
	return biggest
}

// procStatus returns pid's state letter and its tracer's PID from /proc/<pid>/status.
func procStatus(t *testing.T, pid int) (state string, tracer int) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			state = strings.Fields(v)[0]
		}
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			tracer, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return state, tracer
}

// catalogEntry is the part of a `checkpoint list -o json` entry the tests read.
type catalogEntry struct {
	ID   string `json:"id"`
	JID  string `json:"jid"`
	Path string `json:"path"`
}

// listCheckpoints returns the daemon's catalog.
func listCheckpoints(t *testing.T, d *daemon) []catalogEntry {
	t.Helper()
	list, err := catalog(d)
	require.NoError(t, err)
	return list
}

// catalog returns the daemon's catalog, as `checkpoint list -o json` prints it.
func catalog(d *daemon) ([]catalogEntry, error) {
	cmd := exec.Command(d.bin, "checkpoint", "list", "-o", "json")
	cmd.Env = d.env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("checkpoint list: %w", err)
	}
	var list struct {
		Checkpoints []catalogEntry `json:"checkpoints"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("checkpoint list printed %q: %w", out, err)
	}
	return list.Checkpoints, nil
}

// managedMemCounter runs the counting workload, with a memhog of mib MiB, as managed job jid and
// returns its PID and counter file once memhog has filled its memory.
func managedMemCounter(t *testing.T, d *daemon, jid string, mib int) (pid int, counter string) {
	t.Helper()
	dir := t.TempDir()
	counter, tick := filepath.Join(dir, "counter"), filepath.Join(dir, "tick")
	require.NoError(t, unix.Mkfifo(tick, 0o600))
	r := d.cli("run", "process", "--jid", jid, "--", "bash", "-c", counterScript, counter, tick, "", memhogBin, strconv.Itoa(mib))
	require.Equal(t, 0, r.code, r.String())
	m := runningRe.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.String())
	pid, _ = strconv.Atoi(m[1])
	t.Cleanup(func() { killTree(pid) })
	require.Eventually(t, func() bool {
		_, err := os.Stat(counter + ".ready")
		return err == nil && readCounter(counter) >= 2
	}, 30*time.Second, 20*time.Millisecond, "the job did not start counting and filling its memory")
	return pid, counter
}
