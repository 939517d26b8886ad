// Package jobs manages the daemon's jobs: workloads it started or adopted, watched until they exit,
// recorded in the store so that a restarted daemon still knows them.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/internal/broadcast"
	"github.com/cedana/cedana/store"
	"github.com/cedana/cedana/sysinfo"
)

// Manager starts, adopts, watches and signals jobs.
type Manager struct {
	store  *store.Store
	logDir string
	log    *slog.Logger

	mu    sync.Mutex
	busy  map[string]bool // keys of the operations under way (a job or a PID being dumped, ...)
	wg    sync.WaitGroup
	ctx   context.Context // the daemon's lifetime: watchers stop with it
	close context.CancelFunc
	ended broadcast.Signal // the end of a job was recorded
}

// New returns a Manager that records jobs in st and puts their logs in logDir.
func New(st *store.Store, logDir string, log *slog.Logger) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{store: st, logDir: logDir, log: log, busy: map[string]bool{}, ctx: ctx, close: cancel}
}

// Close stops watching jobs; the jobs themselves keep running. It does not wait for the daemon's
// own children to exit: their watchers end with the daemon.
func (m *Manager) Close() {
	m.close()
	m.wg.Wait()
}

// Ended returns a channel closed when the end of a job is next recorded. Take it before reading
// the job whose end it announces.
func (m *Manager) Ended() <-chan struct{} { return m.ended.C() }

// Store is the manager's store.
func (m *Manager) Store() *store.Store { return m.store }

// Lock marks key (e.g. "job:<jid>" or "pid:<pid>") busy for one operation, or fails with a busy
// error when another operation holds it. Call the returned function when done.
func (m *Manager) Lock(key, what string) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[key] {
		return nil, errs.Busy("%s is busy with another operation: try again when it is done", what)
	}
	m.busy[key] = true
	return func() {
		m.mu.Lock()
		delete(m.busy, key)
		m.mu.Unlock()
	}, nil
}

// Command is a program a runtime starts as a job through the manager.
type Command struct {
	// Type is the runtime's name, recorded as the job's type.
	Type string
	// JID and Log are the job's ID and log file, as NewJob settled them.
	JID, Log string
	// Details are the runtime's details of the job, recorded with it.
	Details []byte
	// Cmd is the program with its arguments, directory and environment. The manager gives it the
	// job's stdin FIFO, appends its stdout and stderr to Log and starts it in a session of its own.
	Cmd *exec.Cmd
}

// Start starts c.Cmd as job c.JID, records the job and watches it for its exit code.
func (m *Manager) Start(ctx context.Context, c Command) (store.Job, error) {
	if err := ValidateJID(c.JID); err != nil {
		return store.Job{}, err
	}
	if err := os.MkdirAll(filepath.Dir(c.Log), 0o755); err != nil {
		return store.Job{}, errs.Precondition("cannot create the log directory: %w", err)
	}
	out, err := os.OpenFile(c.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return store.Job{}, errs.Precondition("cannot open the job's log: %w", err)
	}
	defer out.Close()
	in, err := m.OpenStdin(c.JID)
	if err != nil {
		return store.Job{}, err
	}
	defer in.Close()
	cmd := c.Cmd
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, out
	// Its own session: the job is not tied to the daemon's, and survives the daemon.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		_ = os.Remove(m.StdinPath(c.JID))
		return store.Job{}, errs.Precondition("cannot start %s: %w", cmd.Args[0], err)
	}
	_ = sysinfo.SetPriority(cmd.Process.Pid, sysinfo.Normal) // not the daemon's background priority

	job := store.Job{JID: c.JID, Type: c.Type, PID: cmd.Process.Pid, Status: store.JobRunning, Log: c.Log, Details: c.Details, StartTime: sysinfo.StartTime(cmd.Process.Pid)}
	if err := m.store.CreateJob(ctx, job); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return store.Job{}, fmt.Errorf("record job %s: %w", c.JID, err)
	}
	m.watchChild(c.JID, cmd.Process)
	return m.store.GetJob(ctx, c.JID)
}

// NewJob settles a new job's JID (generated when empty, else checked and not yet taken) and log
// path (<logDir>/<jid>.log when empty), before the job's workload starts.
func (m *Manager) NewJob(ctx context.Context, jid, logPath string) (string, string, error) {
	if jid == "" {
		jid = store.NewJID()
	} else if err := ValidateJID(jid); err != nil {
		return "", "", err
	}
	if _, err := m.store.GetJob(ctx, jid); err == nil {
		return "", "", errs.Exists("job %s already exists: choose another --jid or delete it", jid)
	}
	if logPath == "" {
		logPath = filepath.Join(m.logDir, jid+".log")
	}
	return jid, logPath, nil
}

// StdinPath is the FIFO that is job jid's standard input. A FIFO rather than a pipe: it has a
// name, so it outlives the daemon and CRIU restores it by path.
func (m *Manager) StdinPath(jid string) string { return filepath.Join(m.logDir, jid+".stdin") }

// OpenStdin creates job jid's stdin FIFO and opens it read-write, so that neither end blocks and
// the job never sees end-of-file.
func (m *Manager) OpenStdin(jid string) (*os.File, error) {
	path := m.StdinPath(jid)
	if err := os.MkdirAll(m.logDir, 0o755); err != nil {
		return nil, errs.Precondition("cannot create the jobs' directory %s: %w", m.logDir, err)
	}
	_ = os.Remove(path)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, errs.Precondition("cannot create the job's stdin %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, errs.Precondition("cannot open the job's stdin %s: %w", path, err)
	}
	return f, nil
}

// WriteStdin writes data to job jid's standard input.
func (m *Manager) WriteStdin(ctx context.Context, jid string, data []byte) error {
	job, err := m.Get(ctx, jid)
	if err != nil {
		return err
	}
	if !Running(job) {
		return errs.Precondition("job %s is not running (%s): it reads no input", jid, job.Status)
	}
	f, err := os.OpenFile(m.StdinPath(jid), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return errs.Precondition("job %s takes no input (it was adopted, not started by cedana): %w", jid, err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write to job %s: %w", jid, err)
	}
	return nil
}

// Forget removes what the manager keeps for job jid besides its record (its stdin FIFO).
func (m *Manager) Forget(jid string) {
	_ = os.Remove(m.StdinPath(jid))
}

// Adopt records an already running process as job jid (a new JID when empty), whose output goes
// to logPath ("" when unknown).
func (m *Manager) Adopt(ctx context.Context, typ, jid string, pid int, details []byte, logPath string) (store.Job, error) {
	if jid == "" {
		jid = store.NewJID()
	} else if err := ValidateJID(jid); err != nil {
		return store.Job{}, err
	}
	st, err := sysinfo.ReadStat(pid)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && st.State == 'Z') {
		return store.Job{}, errs.NotFound("no running process with PID %d", pid)
	}
	if err != nil {
		return store.Job{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	job := store.Job{JID: jid, Type: typ, PID: pid, Status: store.JobRunning, Log: logPath, Details: details, StartTime: st.StartTime}
	if err := m.create(ctx, job); err != nil {
		return store.Job{}, err
	}
	m.watchForeign(jid, pid, st.StartTime)
	return m.store.GetJob(ctx, jid)
}

// AdoptWaiting records pid as job jid, like Adopt, for a workload whose exit code wait returns
// when it ends: one whose supervisor is the daemon's child (`runc run`, which waits for its
// container) or that its runtime reports (containerd's task exit). The workload may have ended
// already: wait then returns at once, and the job is recorded halted with that code.
func (m *Manager) AdoptWaiting(ctx context.Context, typ, jid string, pid int, details []byte, logPath string, wait func() (int, error)) (store.Job, error) {
	if err := ValidateJID(jid); err != nil {
		return store.Job{}, err
	}
	var start uint64
	if st, err := sysinfo.ReadStat(pid); err == nil && st.State != 'Z' {
		start = st.StartTime
	}
	job := store.Job{JID: jid, Type: typ, PID: pid, Status: store.JobRunning, Log: logPath, Details: details, StartTime: start}
	if err := m.create(ctx, job); err != nil {
		return store.Job{}, err
	}
	m.watchWaiting(jid, pid, wait)
	return m.store.GetJob(ctx, jid)
}

// watchWaiting records job jid's exit code, which wait returns when the job's workload ends.
func (m *Manager) watchWaiting(jid string, pid int, wait func() (int, error)) {
	go func() {
		code, err := wait()
		if err != nil {
			m.log.Warn("cannot learn the job's exit code", "jid", jid, "pid", pid, "error", err)
			m.halt(jid, pid, nil)
			return
		}
		m.log.Info("job exited", "jid", jid, "pid", pid, "exit_code", code)
		m.halt(jid, pid, &code)
	}()
}

// create records a new job, or says that its JID is taken.
func (m *Manager) create(ctx context.Context, job store.Job) error {
	if err := m.store.CreateJob(ctx, job); err != nil {
		if errdefs.IsAlreadyExists(err) {
			return errs.Reword(err, "job %s already exists: choose another --jid or delete it", job.JID)
		}
		return fmt.Errorf("record job %s: %w", job.JID, err)
	}
	return nil
}

// Reconcile runs when the daemon starts: jobs recorded as running are watched again if their
// process is still the same one, and marked halted otherwise (exit code unknown: the process was
// not the new daemon's child).
func (m *Manager) Reconcile(ctx context.Context) error {
	list, err := m.store.ListJobs(ctx)
	if err != nil {
		return err
	}
	for _, job := range list {
		if job.Status != store.JobRunning {
			continue
		}
		if sysinfo.Alive(job.PID, job.StartTime) {
			m.log.Info("job still running", "jid", job.JID, "pid", job.PID)
			m.watchForeign(job.JID, job.PID, job.StartTime)
			continue
		}
		m.log.Info("job ended while the daemon was away", "jid", job.JID, "pid", job.PID)
		m.halt(job.JID, job.PID, nil)
	}
	return nil
}

// Signal sends sig to job jid's process.
func (m *Manager) Signal(ctx context.Context, jid string, sig syscall.Signal) (store.Job, error) {
	job, err := m.Get(ctx, jid)
	if err != nil {
		return job, err
	}
	if job.Status != store.JobRunning || !sysinfo.Alive(job.PID, job.StartTime) {
		return job, errs.Precondition("job %s is not running (%s): nothing to signal", jid, job.Status)
	}
	if err := unix.Kill(job.PID, sig); err != nil {
		return job, fmt.Errorf("signal job %s (PID %d): %w", jid, job.PID, err)
	}
	return job, nil
}

// Get returns job jid, or a not-found error that says how to list jobs.
func (m *Manager) Get(ctx context.Context, jid string) (store.Job, error) {
	job, err := m.store.GetJob(ctx, jid)
	if errdefs.IsNotFound(err) {
		return job, errs.Reword(err, "no job %s (see `cedana ps`)", jid)
	}
	return job, err
}

// Running reports whether job's process is alive and is still the job's.
func Running(job store.Job) bool {
	return job.Status == store.JobRunning && sysinfo.Alive(job.PID, job.StartTime)
}

// watchChild waits for a child of the daemon and records its exit code.
func (m *Manager) watchChild(jid string, proc *os.Process) {
	go func() {
		state, err := proc.Wait()
		if err != nil {
			m.log.Warn("cannot wait for job", "jid", jid, "pid", proc.Pid, "error", err)
			m.halt(jid, proc.Pid, nil)
			return
		}
		code := exitCode(state)
		m.log.Info("job exited", "jid", jid, "pid", proc.Pid, "exit_code", code)
		m.halt(jid, proc.Pid, &code)
	}()
}

// watchForeign waits for a process that is not the daemon's child; its exit code cannot be known.
func (m *Manager) watchForeign(jid string, pid int, start uint64) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if sysinfo.WaitExit(m.ctx, pid, start) != nil {
			return // shutting down
		}
		if !sysinfo.Alive(pid, start) {
			m.log.Info("job exited", "jid", jid, "pid", pid)
			m.halt(jid, pid, nil)
		}
	}()
}

// halt records that job jid's process pid ended, unless the job has moved on to another PID.
func (m *Manager) halt(jid string, pid int, code *int) {
	if m.ctx.Err() != nil {
		return // shutting down: the next daemon finds out
	}
	_, err := m.store.UpdateJob(context.WithoutCancel(m.ctx), jid, func(j *store.Job) error {
		if j.PID != pid {
			return errSkip
		}
		j.Status = store.JobHalted
		j.ExitCode = code
		return nil
	})
	if err != nil && !errors.Is(err, errSkip) && !errors.Is(err, errdefs.ErrNotFound) {
		m.log.Warn("cannot record the end of a job", "jid", jid, "error", err)
	}
	if err == nil {
		m.ended.Notify()
	}
}

var errSkip = errors.New("skip")

// exitCode is the shell's view: the exit status, or 128+signal.
func exitCode(state *os.ProcessState) int {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}
