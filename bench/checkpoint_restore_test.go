package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/internal/testutil"
)

// target is the goal: cedana may take at most 1.05x the time of the raw criu CLI.
const target = 1.05

// Bounds that keep a broken machine from hanging the benchmark until go test's -timeout.
const (
	commandTimeout = 5 * time.Minute  // one dump or restore
	readyTimeout   = 3 * time.Minute  // the workload touching its memory
	goneTimeout    = 30 * time.Second // a killed process leaving /proc
)

// tool is one side of the comparison.
type tool int

const (
	raw tool = iota
	ced
)

func (t tool) String() string {
	if t == raw {
		return "raw"
	}
	return "cedana"
}

// sample is one dump+restore round of one tool. Durations are zero where they do not apply.
type sample struct {
	dump, restore time.Duration // wall time of the CLI command

	// cedana's own accounting (-o json), cedana only.
	dumpTotal, criuDump                 time.Duration
	restoreTotal, criuRestore, waitPIDs time.Duration

	// Span of CRIU's own log (last timestamp), both tools: CRIU's work as CRIU sees it.
	dumpLog, restoreLog time.Duration

	imageBytes int64
}

// restoreExclWait is the restore wall time without cedana's wait_pids phase.
func (s sample) restoreExclWait() time.Duration { return s.restore - s.waitPIDs }

// sizeResult holds the samples of one workload size.
type sizeResult struct {
	mib      int
	raw, ced []sample
}

// BenchmarkCheckpointRestore compares `cedana dump/restore process` with the raw criu CLI on
// processes holding 256 MiB and 1 GiB of touched memory. It does its own iterations: run it with
// -benchtime 1x (see `just bench`).
func BenchmarkCheckpointRestore(b *testing.B) {
	criuBin := testutil.RequireCRIU(b).Binary
	e := setup(b, criuBin)
	iters := envInt(b, "CEDANA_BENCH_ITER", 3, 1)
	warmup := envInt(b, "CEDANA_BENCH_WARMUP", 1, 0)
	sizes := envSizes(b, 256, 1024)

	var results []sizeResult
	for _, mib := range sizes {
		b.Run(sizeName(mib), func(b *testing.B) {
			r := sizeResult{mib: mib}
			for i := range warmup + iters {
				timed := i >= warmup
				label := fmt.Sprintf("warmup%d", i)
				if timed {
					label = fmt.Sprintf("iter%d", i-warmup)
				}
				// Alternate which tool goes first, so that neither always runs on a
				// machine the other has just warmed up (or dirtied).
				order := []tool{raw, ced}
				if i%2 == 1 {
					order = []tool{ced, raw}
				}
				for _, t := range order {
					s, err := e.round(t, mib, label)
					if err != nil {
						b.Fatalf("%s %s %s: %v\ndaemon log:\n%s", sizeName(mib), t, label, err, tail(e.daemonLog, 4096))
					}
					b.Logf("%-7s %-6s %-8s dump %8s  restore %8s  criu-log dump %8s restore %8s  images %s",
						sizeName(mib), t, label, ms(s.dump), ms(s.restore), ms(s.dumpLog), ms(s.restoreLog), mibs(s.imageBytes))
					if timed {
						if t == raw {
							r.raw = append(r.raw, s)
						} else {
							r.ced = append(r.ced, s)
						}
					}
				}
			}
			m := summarize(r)
			b.ReportMetric(m.dumpRatio, "dump-ratio")
			b.ReportMetric(m.restoreRatio, "restore-ratio")
			b.ReportMetric(m.restoreExclRatio, "restore-excl-wait-ratio")
			b.ReportMetric(float64(m.rawDump.med)/1e6, "raw-dump-ms")
			b.ReportMetric(float64(m.cedDump.med)/1e6, "cedana-dump-ms")
			b.ReportMetric(float64(m.rawRestore.med)/1e6, "raw-restore-ms")
			b.ReportMetric(float64(m.cedRestore.med)/1e6, "cedana-restore-ms")
			results = append(results, r)
		})
	}
	if len(results) == 0 {
		return
	}
	e.printReport(os.Stdout, results, iters, warmup)
	if os.Getenv("CEDANA_BENCH_ENFORCE") == "1" {
		for _, r := range results {
			m := summarize(r)
			if m.dumpRatio > target || m.restoreRatio > target {
				b.Errorf("%s: cedana/raw dump %.3fx, restore %.3fx: target is <= %.2fx", sizeName(r.mib), m.dumpRatio, m.restoreRatio, target)
			}
		}
	}
}

// env is the benchmark's machinery: built binaries, the daemon, the image directory.
type env struct {
	tmp       string
	criu      string
	cedana    string
	memhog    string
	images    string // parent of the image directories, on tmpfs
	imagesFS  string // what images is on, for the report
	socket    string
	daemonLog string
	daemonPID int

	criuEnv   []string // raw criu: our environment plus CRIU_FAULT
	rawFlags  []string // rawDump's and rawRestore's log level flags (default -v4)
	cedanaEnv []string // the daemon and the CLI: our environment with only our CEDANA_ variables

	seq int
}

func setup(b *testing.B, criuBin string) *env {
	b.Helper()
	// Restored trees of the raw criu (restore --restore-detached) are reparented to the nearest
	// subreaper when criu exits: make that us, so that we can reap them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		b.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}

	root, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		b.Fatalf("run the benchmark from its package directory (go test ./bench): %v", err)
	}

	tmp := b.TempDir()
	e := &env{
		tmp:    tmp,
		criu:   criuBin,
		cedana: filepath.Join(tmp, "cedana"),
		memhog: filepath.Join(tmp, "memhog"),
		socket: filepath.Join(tmp, "cedana.sock"),

		rawFlags: []string{"-v4"},
	}
	goBuild(b, root, e.cedana, ".")
	goBuild(b, root, e.memhog, "./bench/memhog")

	e.images = os.Getenv("CEDANA_BENCH_IMAGE_DIR")
	if e.images == "" {
		e.images, err = os.MkdirTemp("/dev/shm", "cedana-bench-")
		if err != nil {
			b.Logf("no /dev/shm (%v): images go to %s, the disk will be measured too", err, tmp)
			e.images, err = os.MkdirTemp(tmp, "images-")
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Cleanup(func() { _ = os.RemoveAll(e.images) })
	} else if e.images, err = filepath.Abs(e.images); err != nil {
		b.Fatal(err)
	}
	e.imagesFS = fsName(e.images)

	criuFault := "CRIU_FAULT=130" // no hardware breakpoints; what cedana's CRIU client sets too
	if v, ok := os.LookupEnv("CRIU_FAULT"); ok {
		criuFault = "CRIU_FAULT=" + v
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRIU_FAULT=") {
			e.criuEnv = append(e.criuEnv, kv)
		}
		if !strings.HasPrefix(kv, "CEDANA_") {
			e.cedanaEnv = append(e.cedanaEnv, kv)
		}
	}
	e.criuEnv = append(e.criuEnv, criuFault)
	configDir := filepath.Join(tmp, "config") // empty: no /etc/cedana/config.json
	if err := os.Mkdir(configDir, 0o755); err != nil {
		b.Fatal(err)
	}
	e.cedanaEnv = append(e.cedanaEnv,
		"CEDANA_ADDRESS="+e.socket,
		"CEDANA_PROTOCOL=unix",
		"CEDANA_CONFIG_DIR="+configDir,
		"CEDANA_CHECKPOINT_DIR="+filepath.Join(tmp, "checkpoints"),
		"CEDANA_DB_PATH="+filepath.Join(tmp, "cedana.db"),
		"CEDANA_CRIU_BINARY_PATH="+criuBin,
	)

	e.daemonLog = os.Getenv("CEDANA_BENCH_DAEMON_LOG")
	if e.daemonLog == "" {
		e.daemonLog = filepath.Join(tmp, "daemon.log")
	}
	e.startDaemon(b)
	return e
}

func goBuild(b *testing.B, dir, out, pkg string) {
	b.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if output, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build -o %s %s: %v\n%s", out, pkg, err, output)
	}
}

// startDaemon starts `cedana daemon start` and waits until its socket accepts connections; a
// cleanup stops it with SIGTERM.
func (e *env) startDaemon(b *testing.B) {
	b.Helper()
	e.daemonPID = launchDaemon(b, []string{e.cedana, "daemon", "start"}, e.cedanaEnv, e.daemonLog, "unix", e.socket, false)
}

// launchDaemon starts args (`cedana daemon start`, perhaps wrapped) with env, its output into
// logPath, waits until it accepts connections on network/address, and returns its PID; a cleanup
// stops it with SIGTERM, sent to its whole process group with wrapped (a wrapper such as unshare
// passes no signal on).
func launchDaemon(b *testing.B, args, env []string, logPath, network, address string, wrapped bool) int {
	b.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a ^C of go test reaches us, not it
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		b.Fatalf("start the daemon: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	b.Cleanup(func() {
		if wrapped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // its own group (Setpgid)
		}
		if testutil.Stop(cmd.Process, exited, 15*time.Second) {
			b.Logf("the daemon did not stop within 15s of SIGTERM: killed it")
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		if conn, err := net.Dial(network, address); err == nil {
			conn.Close()
			return cmd.Process.Pid
		}
		select {
		case <-exited:
			b.Fatalf("the daemon exited: %v\n%s", waitErr, tail(logPath, 4096))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("the daemon did not listen on %s within 30s\n%s", address, tail(logPath, 4096))
		}
	}
}

// workload is one running memhog that we started (and so reap).
type workload struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{}
}

// startWorkload starts memhog holding mib MiB in its own session (so that CRIU needs no
// --shell-job), stdio on /dev/null, and waits until it has touched all its memory. args are more
// memhog flags (e.g. -mode compressible).
func (e *env) startWorkload(mib int, args ...string) (*workload, error) {
	e.seq++
	ready := filepath.Join(e.tmp, fmt.Sprintf("ready-%d", e.seq))
	cmd := exec.Command(e.memhog, append([]string{"-mib", strconv.Itoa(mib), "-ready", ready}, args...)...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// stdio stays on /dev/null: a pipe to us would be an external resource CRIU refuses to dump.
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start memhog: %w", err)
	}
	w := &workload{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(w.exited)
	}()
	deadline := time.Now().Add(readyTimeout)
	for {
		if _, err := os.Stat(ready); err == nil {
			_ = os.Remove(ready)
			return w, nil
		}
		select {
		case <-w.exited:
			return nil, fmt.Errorf("memhog -mib %d exited before it was ready: %w", mib, waitErr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			w.kill()
			return nil, fmt.Errorf("memhog -mib %d was not ready within %s", mib, readyTimeout)
		}
	}
}

// kill kills and reaps the workload unless it has exited already.
func (w *workload) kill() {
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.cmd.Process.Kill()
	<-w.exited
}

// round starts a workload of mib MiB, dumps it and restores it with t, then kills the restored
// process and removes the images.
func (e *env) round(t tool, mib int, label string) (s sample, err error) {
	w, err := e.startWorkload(mib)
	if err != nil {
		return s, err
	}
	defer w.kill()
	pid := w.pid
	name := fmt.Sprintf("%s-%s-%s", t, sizeName(mib), label)
	dir := filepath.Join(e.images, name)
	defer os.RemoveAll(dir)

	// Dump: CRIU kills the workload once its images are written.
	switch t {
	case raw:
		if err := os.Mkdir(dir, 0o700); err != nil {
			return s, err
		}
		start := time.Now()
		_, stderr, err := e.run(e.criuEnv, e.criu, "dump", "-t", strconv.Itoa(pid), "-D", dir, "-o", "dump.log", "-v4")
		s.dump = time.Since(start)
		if err != nil {
			return s, fmt.Errorf("criu dump: %w: %s%s", err, stderr, logErrors(filepath.Join(dir, "dump.log")))
		}
	case ced:
		start := time.Now()
		stdout, stderr, err := e.run(e.cedanaEnv, e.cedana, "dump", "process", strconv.Itoa(pid),
			"--dir", e.images, "--name", name, "-o", "json")
		s.dump = time.Since(start)
		if err != nil {
			return s, fmt.Errorf("cedana dump: %w: %s", err, stderr)
		}
		var resp response
		if err := json.Unmarshal(stdout, &resp); err != nil {
			return s, fmt.Errorf("cedana dump -o json: %w: %s", err, stdout)
		}
		if resp.Path != dir {
			return s, fmt.Errorf("cedana dumped to %q, expected %q", resp.Path, dir)
		}
		s.dumpTotal = resp.Stats.Total.d
		s.criuDump = resp.Stats.Phases["criu_dump"].d
	}
	s.dumpLog = logSpan(filepath.Join(dir, "dump.log"))
	s.imageBytes = dirSize(dir)

	// Not timed: the dumped process must be gone (reaped, not a zombie) before its PID can be
	// restored. We are its parent, so reaping it is up to us.
	select {
	case <-w.exited:
	case <-time.After(goneTimeout):
		return s, fmt.Errorf("workload %d still alive %s after the dump", pid, goneTimeout)
	}
	if err := waitGone(pid, goneTimeout); err != nil {
		return s, err
	}

	restored := 0
	defer func() {
		if restored > 0 {
			if kerr := e.killRestored(t, restored); kerr != nil && err == nil {
				err = kerr
			}
		}
		e.reapStrays()
	}()
	switch t {
	case raw:
		start := time.Now()
		_, stderr, err := e.run(e.criuEnv, e.criu, "restore", "-D", dir, "-o", "restore.log", "-v4", "-d")
		s.restore = time.Since(start)
		if isAlive(pid) {
			restored = pid // CRIU restores the original PIDs
		}
		if err != nil {
			return s, fmt.Errorf("criu restore: %w: %s%s", err, stderr, logErrors(filepath.Join(dir, "restore.log")))
		}
	case ced:
		start := time.Now()
		stdout, stderr, err := e.run(e.cedanaEnv, e.cedana, "restore", "process", "--path", dir, "-o", "json")
		s.restore = time.Since(start)
		if isAlive(pid) {
			restored = pid
		}
		if err != nil {
			return s, fmt.Errorf("cedana restore: %w: %s", err, stderr)
		}
		var resp response
		if err := json.Unmarshal(stdout, &resp); err != nil {
			return s, fmt.Errorf("cedana restore -o json: %w: %s", err, stdout)
		}
		if resp.PID != pid {
			return s, fmt.Errorf("cedana restored PID %d, expected %d", resp.PID, pid)
		}
		s.restoreTotal = resp.Stats.Total.d
		s.criuRestore = resp.Stats.Phases["criu_restore"].d
		s.waitPIDs = resp.Stats.Phases["wait_pids"].d
	}
	s.restoreLog = logSpan(filepath.Join(dir, "restore.log"))
	if restored == 0 {
		return s, fmt.Errorf("%s restore succeeded but PID %d is not running", t, pid)
	}
	if comm := procComm(pid); comm != "memhog" {
		return s, fmt.Errorf("restored PID %d runs %q, not memhog", pid, comm)
	}
	return s, nil
}

// killRestored kills a restored workload and waits until it is gone: the raw criu's restored
// tree is reparented to us (the subreaper) and reaped here, cedana's is the daemon's child and
// the daemon reaps it.
func (e *env) killRestored(t tool, pid int) error {
	if pid <= 1 { // kill(0) would reach our own process group
		return fmt.Errorf("no restored PID to kill (got %d)", pid)
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill restored %d: %w", pid, err)
	}
	if t == raw {
		for {
			_, err := unix.Wait4(pid, nil, 0, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil && !errors.Is(err, unix.ECHILD) {
				return fmt.Errorf("reap restored %d: %w", pid, err)
			}
			break
		}
	}
	return waitGone(pid, goneTimeout)
}

// reapStrays reaps zombie children that no exec.Cmd waits for: anything orphaned to us (the
// subreaper) besides the restored workloads killRestored reaps. None are expected.
func (e *env) reapStrays() {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == e.daemonPID {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != self || st.state != 'Z' || st.comm == "memhog" {
			// memhog zombies are our exec.Cmd workloads, reaped by their Wait.
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			fmt.Fprintf(os.Stderr, "bench: reaped stray child %d (%s)\n", pid, st.comm)
		}
	}
}

// run runs a command and returns its stdout and stderr.
func (e *env) run(environ []string, name string, args ...string) (stdout, stderr []byte, err error) {
	stdout, stderr, _, err = e.runCPU(environ, name, args...)
	return stdout, stderr, err
}

// runCPU is run that also returns the command's CPU time (user and system, with its waited-for
// children's).
func (e *env) runCPU(environ []string, name string, args ...string) (stdout, stderr []byte, cpu time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = environ
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (killed after %s)", err, commandTimeout)
	}
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return out.Bytes(), bytes.TrimSpace(errb.Bytes()), cpu, err
}

// response is the part of cedana's -o json dump and restore output that the benchmark reads.
type response struct {
	Path  string `json:"path"`
	PID   int    `json:"pid"`
	Stats struct {
		Total  jsonDuration            `json:"total"`
		Phases map[string]jsonDuration `json:"phases"`
	} `json:"stats"`
}

// jsonDuration is a google.protobuf.Duration in protojson form, e.g. "1.000340s".
type jsonDuration struct{ d time.Duration }

func (j *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := time.ParseDuration(s)
	j.d = d
	return err
}

// waitGone waits until /proc/<pid> no longer exists.
func waitGone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := readStat(pid)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PID %d (%s, state %c, parent %d) still exists after %s", pid, st.comm, st.state, st.ppid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func isAlive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

func procComm(pid int) string {
	st, _ := readStat(pid)
	return st.comm
}

type procStat struct {
	comm  string
	state byte
	ppid  int
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[closing+1:])
	if len(fields) < 2 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ppid, _ := strconv.Atoi(fields[1])
	return procStat{comm: s[open+1 : closing], state: fields[0][0], ppid: ppid}, nil
}

var logTimestamp = regexp.MustCompile(`(?m)^\((\d+)\.(\d{6})\)`)

// logSpan is the last timestamp of a CRIU log: how long CRIU itself took, from its log's start.
func logSpan(path string) time.Duration {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	all := logTimestamp.FindAllSubmatch(data, -1)
	if len(all) == 0 {
		return 0
	}
	last := all[len(all)-1]
	sec, _ := strconv.Atoi(string(last[1]))
	usec, _ := strconv.Atoi(string(last[2]))
	return time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond
}

// logErrors quotes a CRIU log's error lines, but for the harmless RLIMIT_NOFILE one.
func logErrors(path string) string {
	lines := criu.LogErrors(path, 5)
	if len(lines) == 0 {
		return ""
	}
	return "\n" + path + ":\n  " + strings.Join(lines, "\n  ")
}

func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// fsName says which kind of file system path is on ("tmpfs" or a magic number).
func fsName(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "?"
	}
	if st.Type == unix.TMPFS_MAGIC {
		return "tmpfs"
	}
	return fmt.Sprintf("fs 0x%x, not tmpfs", st.Type)
}

func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	return string(data)
}

func envInt(b *testing.B, name string, def, minimum int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minimum {
		b.Fatalf("%s=%q: want an integer >= %d", name, v, minimum)
	}
	return n
}

// envSizes is the workload sizes in MiB: CEDANA_BENCH_SIZES (comma-separated), else defaults.
func envSizes(b *testing.B, defaults ...int) []int {
	b.Helper()
	v := os.Getenv("CEDANA_BENCH_SIZES")
	if v == "" {
		return defaults
	}
	var sizes []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("CEDANA_BENCH_SIZES=%q: want comma-separated sizes in MiB", v)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// series summarizes one measurement over the iterations.
type series struct{ med, lo, hi time.Duration }

func newSeries(ss []sample, f func(sample) time.Duration) series {
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = f(s)
	}
	if len(ds) == 0 {
		return series{}
	}
	return series{med: median(ds), lo: slices.Min(ds), hi: slices.Max(ds)}
}

// spread is the range relative to the median.
func (s series) spread() float64 { return ratio(s.hi-s.lo, s.med) }

func (s series) String() string { return fmt.Sprintf("%s-%s", ms(s.lo), ms(s.hi)) }

// summary is what the report says about one size.
type summary struct {
	rawDump, cedDump, rawRestore, cedRestore, cedRestoreExcl series

	// Ratios of the medians, and medians of the per-iteration ratios (cedana's and raw's round
	// of one iteration run back to back, so slow drifts of the machine cancel out).
	dumpRatio, restoreRatio, restoreExclRatio    float64
	pairedDump, pairedRestore, pairedRestoreExcl float64

	// cedana's accounting and CRIU's own logs, medians.
	cedDumpTotal, cedCriuDump, cedRestoreTotal, cedCriuRestore, cedWaitPIDs time.Duration
	rawDumpLog, cedDumpLog, rawRestoreLog, cedRestoreLog                    time.Duration
	images                                                                  int64
}

func summarize(r sizeResult) summary {
	med := func(ss []sample, f func(sample) time.Duration) time.Duration { return newSeries(ss, f).med }
	dump := func(s sample) time.Duration { return s.dump }
	restore := func(s sample) time.Duration { return s.restore }
	m := summary{
		rawDump:         newSeries(r.raw, dump),
		cedDump:         newSeries(r.ced, dump),
		rawRestore:      newSeries(r.raw, restore),
		cedRestore:      newSeries(r.ced, restore),
		cedRestoreExcl:  newSeries(r.ced, sample.restoreExclWait),
		cedDumpTotal:    med(r.ced, func(s sample) time.Duration { return s.dumpTotal }),
		cedCriuDump:     med(r.ced, func(s sample) time.Duration { return s.criuDump }),
		cedRestoreTotal: med(r.ced, func(s sample) time.Duration { return s.restoreTotal }),
		cedCriuRestore:  med(r.ced, func(s sample) time.Duration { return s.criuRestore }),
		cedWaitPIDs:     med(r.ced, func(s sample) time.Duration { return s.waitPIDs }),
		rawDumpLog:      med(r.raw, func(s sample) time.Duration { return s.dumpLog }),
		cedDumpLog:      med(r.ced, func(s sample) time.Duration { return s.dumpLog }),
		rawRestoreLog:   med(r.raw, func(s sample) time.Duration { return s.restoreLog }),
		cedRestoreLog:   med(r.ced, func(s sample) time.Duration { return s.restoreLog }),
	}
	if len(r.ced) > 0 {
		m.images = r.ced[0].imageBytes
	}
	m.dumpRatio = ratio(m.cedDump.med, m.rawDump.med)
	m.restoreRatio = ratio(m.cedRestore.med, m.rawRestore.med)
	m.restoreExclRatio = ratio(m.cedRestoreExcl.med, m.rawRestore.med)
	paired := func(ced, raw func(sample) time.Duration) float64 {
		var rs []float64
		for i := range min(len(r.raw), len(r.ced)) {
			rs = append(rs, ratio(ced(r.ced[i]), raw(r.raw[i])))
		}
		if len(rs) == 0 {
			return 0
		}
		slices.Sort(rs)
		if n := len(rs); n%2 == 0 {
			return (rs[n/2-1] + rs[n/2]) / 2
		}
		return rs[len(rs)/2]
	}
	m.pairedDump = paired(dump, dump)
	m.pairedRestore = paired(restore, restore)
	m.pairedRestoreExcl = paired(sample.restoreExclWait, restore)
	return m
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func verdict(r float64) string {
	if r <= target {
		return "met"
	}
	return "MISSED"
}

// printReport prints the comparison table, cedana's breakdown and the verdict.
func (e *env) printReport(w io.Writer, results []sizeResult, iters, warmup int) {
	criuVersion := "?"
	if out, err := exec.Command(e.criu, "--version").Output(); err == nil {
		criuVersion = strings.TrimPrefix(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0], "Version: ")
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)

	fmt.Fprintf(w, "\n=== cedana vs raw CRIU: dump + restore of a process with touched memory ===\n")
	fmt.Fprintf(w, "criu %s (%s), kernel %s, %d CPUs; images in %s (%s)\n",
		criuVersion, e.criu, unix.ByteSliceToString(uts.Release[:]), runtime.NumCPU(), e.images, e.imagesFS)
	fmt.Fprintf(w, "wall time of the CLI command (`criu dump|restore` vs `cedana dump|restore process`),\n")
	fmt.Fprintf(w, "median of %d iteration(s) per size after %d warm-up, raw and cedana back to back, alternating who goes first;\n", iters, warmup)
	fmt.Fprintf(w, "paired = median of the per-iteration ratios\n\n")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\top\traw criu\tcedana\tcedana/raw\tpaired\ttarget <= 1.05x\traw min-max\tcedana min-max\t")
	for _, r := range results {
		m := summarize(r)
		row := func(op string, raw, ced series, rt, paired float64) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3fx\t%.3fx\t%s\t%s\t%s\t\n", sizeName(r.mib), op,
				ms(raw.med), ms(ced.med), rt, paired, verdict(rt), raw, ced)
		}
		row("dump", m.rawDump, m.cedDump, m.dumpRatio, m.pairedDump)
		row("restore", m.rawRestore, m.cedRestore, m.restoreRatio, m.pairedRestore)
		row("restore - wait_pids", m.rawRestore, m.cedRestoreExcl, m.restoreExclRatio, m.pairedRestoreExcl)
	}
	tw.Flush()

	fmt.Fprintf(w, "\ncedana breakdown (medians): wall = CLI command, daemon = stats.total, criu = stats.phases.criu_* (exec of\n")
	fmt.Fprintf(w, "`criu swrk` + RPC + criu's exit); criu log = last timestamp in CRIU's own log, for cedana's and the raw run\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\top\twall\tdaemon\tcriu phase\twait_pids\tCLI+RPC\tdaemon-criu-wait\tcriu log cedana\tcriu log raw\timages\t")
	for _, r := range results {
		m := summarize(r)
		fmt.Fprintf(tw, "%s\tdump\t%s\t%s\t%s\t-\t%s\t%s\t%s\t%s\t%s\t\n", sizeName(r.mib),
			ms(m.cedDump.med), ms(m.cedDumpTotal), ms(m.cedCriuDump),
			ms(m.cedDump.med-m.cedDumpTotal), ms(m.cedDumpTotal-m.cedCriuDump),
			ms(m.cedDumpLog), ms(m.rawDumpLog), mibs(m.images))
		fmt.Fprintf(tw, "%s\trestore\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\n", sizeName(r.mib),
			ms(m.cedRestore.med), ms(m.cedRestoreTotal), ms(m.cedCriuRestore), ms(m.cedWaitPIDs),
			ms(m.cedRestore.med-m.cedRestoreTotal), ms(m.cedRestoreTotal-m.cedCriuRestore-m.cedWaitPIDs),
			ms(m.cedRestoreLog), ms(m.rawRestoreLog))
	}
	tw.Flush()

	var missed, noisy []string
	for _, r := range results {
		m := summarize(r)
		if m.dumpRatio > target {
			missed = append(missed, fmt.Sprintf("%s dump %.3fx", sizeName(r.mib), m.dumpRatio))
		}
		if m.restoreRatio > target {
			missed = append(missed, fmt.Sprintf("%s restore %.3fx", sizeName(r.mib), m.restoreRatio))
		}
		for _, s := range []struct {
			name string
			s    series
		}{{"raw dump", m.rawDump}, {"cedana dump", m.cedDump}, {"raw restore", m.rawRestore}, {"cedana restore", m.cedRestore}} {
			if s.s.spread() > 2*(target-1) {
				noisy = append(noisy, fmt.Sprintf("%s %s ±%.0f%%", sizeName(r.mib), s.name, 50*s.s.spread()))
			}
		}
	}
	if len(missed) == 0 {
		fmt.Fprintf(w, "\ntarget cedana <= %.2fx raw criu: MET for every size\n", target)
	} else {
		fmt.Fprintf(w, "\ntarget cedana <= %.2fx raw criu: MISSED (%s)\n", target, strings.Join(missed, ", "))
	}
	if len(noisy) > 0 {
		fmt.Fprintf(w, "noise: these runs spread wider than the %.0f%% margin, so their ratios are not conclusive\n", 100*(target-1))
		fmt.Fprintf(w, "(raise CEDANA_BENCH_ITER): %s\n", strings.Join(noisy, ", "))
	}
	if os.Getenv("CEDANA_BENCH_DAEMON_LOG") != "" {
		fmt.Fprintf(w, "daemon log: %s\n", e.daemonLog)
	}
	fmt.Fprintln(w)
}

func sizeName(mib int) string {
	if mib%1024 == 0 {
		return fmt.Sprintf("%dGiB", mib/1024)
	}
	return fmt.Sprintf("%dMiB", mib)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func mibs(n int64) string {
	return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
}
