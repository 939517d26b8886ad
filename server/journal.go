package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/archive/live"
	"github.com/cedana/cedana/checkpoint"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage"
	"github.com/cedana/cedana/store"
	"github.com/cedana/cedana/sysinfo"
)

// remoteCheckTimeout bounds how long settling a dump asks the object store whether its upload
// completed.
const remoteCheckTimeout = 30 * time.Second

// dumpJournal is one dump's adapters.DumpJournal in the daemon's store, under the ID its
// checkpoint gets in the catalog. Its writes ignore the request's cancellation: a dump goes on
// when its client goes away.
type dumpJournal struct {
	ctx   context.Context
	store *store.Store
	log   *slog.Logger
	id    string
	jid   string
	begun bool
}

var _ adapters.DumpJournal = (*dumpJournal)(nil)

func newDumpJournal(ctx context.Context, st *store.Store, log *slog.Logger, jid string) *dumpJournal {
	return &dumpJournal{ctx: context.WithoutCancel(ctx), store: st, log: log, id: store.NewCheckpointID(), jid: jid}
}

// Begin implements adapters.DumpJournal.
func (j *dumpJournal) Begin(work, final string) error {
	if err := j.store.BeginDump(j.ctx, store.PendingDump{ID: j.id, JID: j.jid, WorkDir: work, Path: final}); err != nil {
		return err
	}
	j.begun = true
	return nil
}

// Started implements adapters.DumpJournal.
func (j *dumpJournal) Started(criuPID int, ck *daemonv1.Checkpoint) error {
	meta, err := protojson.Marshal(ck)
	if err != nil {
		return err
	}
	pid := int(ck.GetPid())
	return j.store.DumpStarted(j.ctx, j.id, pid, sysinfo.StartTime(pid), criuPID, sysinfo.StartTime(criuPID), meta)
}

// Dumped implements adapters.DumpJournal.
func (j *dumpJournal) Dumped() error {
	start := time.Now()
	if err := j.store.DumpDone(j.ctx, j.id); err != nil {
		return err
	}
	j.log.Debug("dump done: its images are complete", "id", j.id, "journal_write", time.Since(start))
	return nil
}

// forget removes the dump from the journal after it failed.
func (j *dumpJournal) forget() {
	if !j.begun {
		return
	}
	if err := j.store.ForgetDump(j.ctx, j.id); err != nil {
		j.log.Warn("forget the failed dump in the journal (the next start settles it)", "id", j.id, "error", err)
	}
}

// settleDumps settles the dumps a previous daemon left in the journal when it was killed during
// them. A dump whose CRIU still runs is settled once that CRIU has exited, in the background,
// with its tree and job claimed meanwhile so that no other dump of them starts: CRIU resumes the
// tree when its post-dump notification goes unanswered, or finishes stopping it when it was
// answered.
func (s *service) settleDumps(ctx context.Context) error {
	list, err := s.jobs.Store().ListPendingDumps(ctx)
	if err != nil {
		return err
	}
	for _, d := range list {
		if d.CRIUPID <= 0 || !sysinfo.Alive(d.CRIUPID, d.CRIUStart) {
			s.settleDump(ctx, d)
			continue
		}
		release := s.claimPending(d)
		s.log.Info("a dump the previous daemon left unfinished is still running: it is settled when its CRIU exits",
			"path", d.Path, "pid", d.PID, "criu_pid", d.CRIUPID)
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			defer release()
			if sysinfo.WaitExit(s.backgroundCtx, d.CRIUPID, d.CRIUStart) != nil {
				return // the daemon is stopping: the next one settles it
			}
			s.settleDump(s.backgroundCtx, d)
		}()
	}
	return nil
}

// claimPending takes, for as long as a pending dump's CRIU runs, the claims a dump of its tree
// and job takes, and returns their release.
func (s *service) claimPending(d store.PendingDump) func() {
	var releases []func()
	if d.PID > 0 {
		if release, err := s.jobs.Lock(adapters.TreeClaim(d.PID)); err == nil {
			releases = append(releases, release)
		}
	}
	if d.JID != "" {
		if release, err := s.lockJob(d.JID); err == nil {
			releases = append(releases, release)
		}
	}
	return func() {
		for _, release := range releases {
			release()
		}
	}
}

// settleDump settles one pending dump whose CRIU is gone. A dump that was not done is rolled
// back: CRIU resumed the workload (or the kernel did, if CRIU died). A done one becomes a complete
// checkpoint in the catalog, unless its workload still runs although the dump was to stop it:
// then the daemon died before CRIU heard the answer to its post-dump notification, and CRIU
// resumed the workload and counted the dump as failed.
func (s *service) settleDump(ctx context.Context, d store.PendingDump) {
	log := s.log.With("id", d.ID, "path", d.Path, "pid", d.PID)
	ck := &daemonv1.Checkpoint{}
	if len(d.Metadata) > 0 {
		if err := protojson.Unmarshal(d.Metadata, ck); err != nil {
			log.Warn("the journal's metadata of an unfinished dump is unreadable", "error", err)
		}
	}
	running := d.PID > 0 && sysinfo.Alive(d.PID, d.PIDStart)
	if d.State != store.DumpDumped || (running && !ck.GetOptions().GetLeaveRunning()) {
		s.rollBackDump(ctx, log, d, running)
		return
	}
	path, size, err := s.completeDump(ctx, d, ck)
	if err != nil {
		log.Error("a dump the previous daemon finished could not be made a checkpoint; its images are left as they are",
			"work_dir", d.WorkDir, "error", err)
		return
	}
	meta, err := protojson.Marshal(ck)
	if err != nil {
		log.Error("encode the metadata of a recovered checkpoint", "error", err)
		return
	}
	entry := store.Checkpoint{ID: d.ID, JID: d.JID, Path: path, Type: ck.GetType(), Size: size, CreatedAt: d.UpdatedAt, Metadata: meta}
	if err := s.jobs.Store().CommitDump(ctx, entry); err != nil {
		log.Error("record a recovered checkpoint in the catalog", "checkpoint", path, "error", err)
		return
	}
	log.Info("recovered a checkpoint the previous daemon finished dumping but did not record", "checkpoint", path, "jid", d.JID)
}

// rollBackDump removes what an unfinished dump wrote and forgets it.
func (s *service) rollBackDump(ctx context.Context, log *slog.Logger, d store.PendingDump, running bool) {
	if err := os.RemoveAll(d.WorkDir); err != nil {
		log.Error("remove the images of an unfinished dump", "work_dir", d.WorkDir, "error", err)
		return
	}
	if _, remote, _ := storage.ParseURL(d.Path); !remote && d.Path != d.WorkDir {
		if err := os.Remove(live.PartialArchive(d.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("remove the partial archive of an unfinished dump", "error", err)
		}
	}
	if err := s.jobs.Store().ForgetDump(ctx, d.ID); err != nil {
		log.Error("forget an unfinished dump in the journal", "error", err)
		return
	}
	outcome := "its workload runs on"
	if !running {
		outcome = "its workload is gone"
	}
	log.Info("rolled back a dump the previous daemon left unfinished: "+outcome, "state", string(d.State))
}

// completeDump makes the images of a done dump a complete checkpoint and returns its path and the
// size it takes: an uncompressed checkpoint gets its checkpoint.json; an archive or upload that
// completed is used as it is (and the images removed); one that did not is replaced by the
// images, kept uncompressed beside it (see adapters.KeepImages). It updates ck to match.
func (s *service) completeDump(ctx context.Context, d store.PendingDump, ck *daemonv1.Checkpoint) (string, int64, error) {
	loc, remote, _ := storage.ParseURL(d.Path)
	images := dirExists(d.WorkDir)
	if d.Path != d.WorkDir {
		if archived, size := s.archived(ctx, d.Path, loc, remote); archived {
			if images {
				if err := os.RemoveAll(d.WorkDir); err != nil {
					s.log.Warn("remove the images of an archived checkpoint", "work_dir", d.WorkDir, "error", err)
				}
			}
			ck.Path, ck.CreatedAt = d.Path, timestamppb.New(d.UpdatedAt)
			return d.Path, size, nil
		}
		if !remote {
			if err := os.Remove(live.PartialArchive(d.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", 0, fmt.Errorf("remove the partial archive: %w", err)
			}
		}
	}
	if !images {
		return "", 0, fmt.Errorf("its images %s are gone", d.WorkDir)
	}
	name := ck.GetName()
	if name == "" {
		name = filepath.Base(d.WorkDir)
	}
	dir, err := adapters.KeepImages(d.WorkDir, name, remote)
	if err != nil {
		return "", 0, fmt.Errorf("keep the images as a checkpoint: %w", err)
	}
	written, err := checkpoint.Read(dir)
	if err == nil { // the dump got as far as writing checkpoint.json
		proto.Reset(ck)
		proto.Merge(ck, written)
	} else {
		ck.CreatedAt = timestamppb.New(d.UpdatedAt)
		if pids := checkpoint.DumpedPIDs(dir, ck.GetPid()); len(pids) > 0 {
			ck.Pids = pids
		}
	}
	if err != nil || ck.Path != dir || ck.Compression != string(archive.None) {
		ck.Path, ck.Compression = dir, string(archive.None)
		if ck.SizeBytes, err = checkpoint.Size(dir); err != nil {
			return "", 0, fmt.Errorf("measure checkpoint: %w", err)
		}
		if err := checkpoint.Commit(dir, ck); err != nil {
			return "", 0, err
		}
	}
	size, err := checkpoint.Size(dir)
	if err != nil {
		return "", 0, fmt.Errorf("measure checkpoint: %w", err)
	}
	return dir, size, nil
}

// archived reports whether a dump's archive (a local file, or an object in S3) is complete, and
// its size.
func (s *service) archived(ctx context.Context, path string, loc storage.Location, remote bool) (bool, int64) {
	if !remote {
		info, err := os.Stat(path)
		if err != nil || !info.Mode().IsRegular() {
			return false, 0
		}
		return true, info.Size()
	}
	client, err := storage.New(s.env.S3)
	if err != nil {
		s.log.Warn("cannot ask the object store whether an upload completed: keeping the local images", "checkpoint", path, "error", err)
		return false, 0
	}
	ctx, cancel := context.WithTimeout(ctx, remoteCheckTimeout)
	defer cancel()
	exists, err := client.Exists(ctx, loc)
	if err != nil {
		s.log.Warn("cannot ask the object store whether an upload completed: keeping the local images", "checkpoint", path, "error", err)
		return false, 0
	}
	return exists, 0
}

// dirExists reports whether path is a directory.
func dirExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}
