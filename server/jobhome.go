package server

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/store"
)

// jobRecord is what a checkpoint of job carries of it, for a daemon that takes the job on.
func (s *service) jobRecord(job store.Job) *daemonv1.JobRecord {
	rec := &daemonv1.JobRecord{Jid: job.JID, Type: job.Type, Details: jobDetails(job), Log: job.Log}
	if s.jobs.HasStdin(job.JID) {
		rec.Stdin = s.jobs.StdinPath(job.JID)
	}
	return rec
}

// takeover is a restore of a job this daemon does not know from a checkpoint that carries the
// job's record (dumped by another daemon, through shared storage): the job is recorded here, with
// a new log in this daemon's log directory, once its workload is restored.
type takeover struct {
	s        *service
	ctx      context.Context
	jid      string
	path     string
	rec      *daemonv1.JobRecord
	log      string
	newLog   bool
	files    []*os.File
	restored bool
}

// check is the restore's adapters.State.Checked: it refuses a checkpoint without the job's record
// or of another job, settles the job's new log and stdin, and has the restore give them to the
// restored tree in place of the files the job had on the daemon that dumped it.
func (t *takeover) check(ck *daemonv1.Checkpoint, st *adapters.State) error {
	rec := ck.GetJob()
	switch {
	case rec == nil:
		return errs.Invalid("there is no job %s here, and checkpoint %s carries no job record to take it on from "+
			"(it was not made by `cedana dump job`, or by an older cedana): restore it as a new job with `cedana restore %s --path %s --attachable`",
			t.jid, t.path, ck.GetType(), t.path)
	case rec.GetJid() != t.jid:
		return errs.Invalid("checkpoint %s is of job %s, not %s: restore it with `cedana restore job %s --path %s`",
			t.path, rec.GetJid(), t.jid, rec.GetJid(), t.path)
	case rec.GetType() != ck.GetType():
		return errs.Invalid("checkpoint %s was made by the %s runtime but its job record says %s: it is damaged; dump the job again",
			t.path, ck.GetType(), rec.GetType())
	}
	jid, log, err := t.s.jobs.NewJob(t.ctx, rec.GetJid(), "")
	if err != nil {
		return err
	}
	_, statErr := os.Stat(log)
	t.newLog = errors.Is(statErr, fs.ErrNotExist)
	if err := touch(log); err != nil {
		return err
	}
	out, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return errs.Precondition("cannot open the job's log %s: %w", log, err)
	}
	t.files = append(t.files, out)
	in, err := t.s.jobs.OpenStdin(jid)
	if err != nil {
		return err
	}
	t.files = append(t.files, in)
	if rec.GetLog() != "" {
		st.Inherit = append(st.Inherit, adapters.Inherited{Path: rec.GetLog(), File: out})
	}
	if rec.GetStdin() != "" {
		st.Inherit = append(st.Inherit, adapters.Inherited{Path: rec.GetStdin(), File: in})
	}
	st.JobLog = log
	t.rec, t.log = rec, log
	return nil
}

// record records the restored workload, pid, as the job, watched as any restored job is.
func (t *takeover) record(ctx context.Context, pid int, wait func() (int, error)) error {
	if t.rec == nil {
		return errors.New("the checkpoint's job record was never checked")
	}
	details, err := protojson.Marshal(t.rec.GetDetails())
	if err != nil {
		return err
	}
	if _, err := t.s.jobs.RestoredAsNew(ctx, t.rec.GetType(), t.jid, pid, details, t.log, wait); err != nil {
		return err
	}
	t.restored = true
	return nil
}

// close closes the files given to the restored tree (it has its own copies) and, when the job was
// not taken on, removes what was made for it.
func (t *takeover) close() {
	for _, f := range t.files {
		_ = f.Close()
	}
	if t.restored || t.rec == nil {
		return
	}
	t.s.jobs.Forget(t.jid)
	if t.newLog {
		_ = os.Remove(t.log)
	}
}
