package jobs

import (
	"context"
	"os"

	"github.com/cedana/cedana/store"
	"github.com/cedana/cedana/sysinfo"
)

// Restored records that job jid runs again as pid and watches it: for the exit code wait returns
// when the restore left the workload under a supervisor that reports it (nil: none), else for its
// exit code when it is the daemon's child (CRIU restored it so), else until it is gone (a
// container runtime owns it).
func (m *Manager) Restored(ctx context.Context, jid string, pid int, wait func() (int, error)) (store.Job, error) {
	start := sysinfo.StartTime(pid)
	job, err := m.store.UpdateJob(ctx, jid, func(j *store.Job) error {
		j.PID = pid
		j.Status = store.JobRunning
		j.ExitCode = nil
		j.StartTime = start
		j.MigratedTo = ""
		return nil
	})
	if err != nil {
		return job, err
	}
	return job, m.watchRestored(jid, pid, start, wait)
}

// watchRestored watches job jid, restored as pid (started at start), as Restored describes.
func (m *Manager) watchRestored(jid string, pid int, start uint64, wait func() (int, error)) error {
	switch {
	case wait != nil:
		m.watchWaiting(jid, pid, wait)
	case !sysinfo.IsChild(pid):
		m.watchForeign(jid, pid, start)
	default:
		proc, err := os.FindProcess(pid)
		if err != nil {
			return err
		}
		m.watchChild(jid, proc)
	}
	return nil
}

// RestoredAsNew records a restored workload, pid, as a new job jid (settled by NewJob) of runtime
// typ, whose output goes to logPath, and watches it as Restored does: one write to the store.
func (m *Manager) RestoredAsNew(ctx context.Context, typ, jid string, pid int, details []byte, logPath string, wait func() (int, error)) (store.Job, error) {
	start := sysinfo.StartTime(pid)
	job := store.Job{JID: jid, Type: typ, PID: pid, Status: store.JobRunning, Log: logPath, Details: details, StartTime: start}
	if err := m.create(ctx, job); err != nil {
		return store.Job{}, err
	}
	return job, m.watchRestored(jid, pid, start, wait)
}

// Migrated records that job jid moved to the daemon at to and runs there. Its PID here is
// cleared first, so that the end of its old process, killed next, does not halt it.
func (m *Manager) Migrated(ctx context.Context, jid, to string) error {
	_, err := m.store.UpdateJob(ctx, jid, func(j *store.Job) error {
		j.PID, j.StartTime, j.ExitCode = 0, 0, nil
		j.Status = store.JobMigrated
		j.MigratedTo = to
		return nil
	})
	return err
}

// HasStdin reports whether job jid has a stdin FIFO here (a job cedana started or restored).
func (m *Manager) HasStdin(jid string) bool {
	info, err := os.Stat(m.StdinPath(jid))
	return err == nil && info.Mode()&os.ModeNamedPipe != 0
}
