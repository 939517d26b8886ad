// What a chain's adapters share besides the request and the response: the daemon's Env, the
// same for every request, and the request's State, which each adapter may change for those after it.

package adapters

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"

	"github.com/cedana/cedana/archive/live"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/criu/imgstream"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage"
)

// Env is the configuration and the services of the process that runs chains (the daemon, or a
// CLI with --no-server): the same for every request, shared by pointer, and never changed by a
// chain.
type Env struct {
	// CRIU runs CRIU requests.
	CRIU *criu.Client
	// CRIUVersion is the CRIU version as CRIU reports it (e.g. 40101), recorded in checkpoints.
	CRIUVersion int32
	// CRIULogLevel is the verbosity of the logs CRIU writes beside the images (criu.log_level).
	CRIULogLevel int32
	// CheckpointDir is the default parent directory of new checkpoints.
	CheckpointDir string
	// Compression is the default codec of new checkpoints ("none" keeps a directory).
	Compression string
	// TempDir holds images of archived or remote checkpoints while they are made or restored.
	TempDir string
	// StreamImages has CRIU stream the images of archives and s3:// checkpoints (DumpStream,
	// RestoreStream) rather than pass them through TempDir.
	StreamImages bool
	// StreamMemory bounds the streamed images held in memory; beyond it they spill into TempDir.
	StreamMemory int64
	// StreamPool keeps the memory of streamed images between dumps (nil: mapped per dump).
	StreamPool *imgstream.Pool
	// Workers is how many cores compression and decompression may use.
	Workers int
	// S3 reaches the object store for s3:// checkpoints.
	S3 storage.Config
	// PIDWaitTimeout bounds how long a restore waits for the checkpoint's PIDs to be free.
	PIDWaitTimeout time.Duration
	// DaemonPID is the PID of the process running the chain, which must never be dumped.
	DaemonPID int
	// Claim takes key for one operation at a time and returns its release; while key is taken,
	// another claim fails at once with a busy error (errs.Busy) naming what. withcriu.Dump claims
	// the tree it dumps, whatever the runtime and however the request named it (TreeClaim). nil:
	// nothing is claimed.
	Claim func(key, what string) (release func(), err error)
	// LazyCheck says whether lazy restores work here (criu.Client.CheckLazy); nil: this process
	// cannot keep a lazy-pages server running after the restore (--no-server).
	LazyCheck func(ctx context.Context) error
}

// State is one request's state in its chain. It is passed by value, so an adapter changes what
// the adapters after it see without affecting those before it.
type State struct {
	// Log is the request's logger.
	Log *slog.Logger
	// Progress receives how far long phases have come; nil when nobody watches.
	Progress *Progress
	// ImageDir is the checkpoint directory CRIU reads or writes; set by the chain.
	ImageDir string
	// DumpCRIU are a runtime's additions to the CRIU dump request (a container's root, external
	// mounts and namespaces, cgroups), applied in order by withcriu.Dump; set by runtime middleware.
	DumpCRIU []func(*rpc.CriuOpts)
	// DumpFrozen run, in order, while CRIU holds the dumped tree frozen with its images written
	// (CRIU's post-dump notification): state to capture consistently with the images, such as a
	// container's writable layer. An error fails the dump and CRIU resumes the tree, so a failure
	// there loses nothing. Set by runtime middleware; they add to the frozen time.
	DumpFrozen []func() error
	// DumpStream, when set, offers the dump handler to stream CRIU's images into the checkpoint's
	// archive (criu --stream); see DumpStream. Set by CompressCheckpoint.
	DumpStream *DumpStream
	// RestoreStream, when set, offers the restore handler the checkpoint's archive as a stream;
	// see RestoreStream. Set by FetchCheckpoint.
	RestoreStream *RestoreStream
	// Journal, when set, records where this dump stands in the daemon's state, so that a daemon
	// killed during the dump settles it when it starts again. nil: nothing is recorded
	// (--no-server).
	Journal DumpJournal
	// JobLog is the log of the job a restore brings back or starts, for runtimes that connect
	// their workload's output themselves (runc, containerd); "" outside job restores.
	JobLog string
	// Supervise, when set, asks a restore handler to leave the restored workload under a
	// supervisor of the caller's (a child, such as runc restore in the foreground) that learns its
	// exit code, and receives how to wait for it. nil: the handler leaves the workload to its
	// runtime as that runtime's own restore would (runc's --detach).
	Supervise *Supervision
	// Job, in a dump of a job, is the job's record, which PrepareDumpDir puts in the
	// checkpoint's metadata so that another daemon can take the job on.
	Job *daemonv1.JobRecord
	// Checked, when set, runs in a restore once the checkpoint's metadata is read and before the
	// runtime's restore: the caller's checks of the checkpoint, and what it derives from it into
	// st (JobLog, Inherit). An error fails the restore before anything is restored.
	Checked func(ck *daemonv1.Checkpoint, st *State) error
	// Inherit are open files a restore puts in place of files the dumped tree had open, by the
	// paths it had them at (CRIU's inherit-fd): a job's log and stdin, on a daemon that takes the
	// job on. Honoured by restores through the daemon's CRIU (withcriu.Restore); the caller closes
	// the files.
	Inherit []Inherited
	// Images, when set, is the restore's temporary images directory (an archive's or an s3://
	// checkpoint's), removed after the chain unless the handler holds it (a lazy restore serves
	// the memory from it). Set by FetchCheckpoint.
	Images *ImagesHold
	// Lazy, when set, receives a lazy restore's lazy-pages server, for the caller to account for
	// until every page has been served. Set by the caller.
	Lazy *LazyPages
	// Send, when set, is where a dump's archive goes instead of req.Dir: a migration's stream to
	// another daemon. Set by the caller.
	Send *Destination
	// Receive, when set, is the archive a restore reads instead of the file at req.Path, which
	// then only names it in messages: a migration's stream from another daemon. Set by the caller.
	Receive io.Reader
}

// Destination is a dump's archive sent elsewhere than a file or an s3:// object.
type Destination struct {
	// Name stands for the checkpoint's path ("cedana://host:port/<name>").
	Name string
	// Sink takes the archive; Commit once it is complete.
	Sink live.Sink
}

// Inherited is one file a restore substitutes for a file the dumped tree had open.
type Inherited struct {
	// Path is the absolute path the dumped tree had the file open at.
	Path string
	// File is what the restored tree gets instead.
	File *os.File
}

// Supervision is what a restore's caller (a job's restore, --no-server) and a handler that
// supervises the restored workload share.
type Supervision struct {
	// Stdout receives the workload's stdout and stderr through its supervisor; nil: JobLog, or
	// else /dev/null. Set by the caller.
	Stdout *os.File
	// Wait waits for the workload's end and returns its exit code (128+signal when killed). Set by
	// a handler that supervises the workload; nil: nobody learns its exit code (a terminal
	// container, a runtime without a supervisor), watch its PID.
	Wait func() (int, error)
	// Signal passes a signal on to the workload through its supervisor; set with Wait.
	Signal func(os.Signal) error
	// Abort ends the workload and its supervisor and removes what the restore made, for a caller
	// that cannot take the restored workload on (its job not recorded, its PID file not written);
	// set with Wait.
	Abort func()
}

// DumpJournal records where a dump stands, so that a daemon killed during the dump can settle it
// when it starts again: roll it back, or make a complete checkpoint of it. PrepareDumpDir calls
// Begin, withcriu.Dump Started and Dumped; the daemon records the end itself (the checkpoint in its
// catalog, or nothing).
type DumpJournal interface {
	// Begin records a dump whose images go into work (just created) for the checkpoint final.
	Begin(work, final string) error
	// Started records the criu process that dumps, and the checkpoint's metadata (with the tree's
	// root PID), before CRIU touches the workload.
	Started(criuPID int, ck *daemonv1.Checkpoint) error
	// Dumped records that the images are complete. withcriu.Dump calls it in CRIU's post-dump
	// notification, after DumpFrozen, with the workload still frozen: once it has returned, the
	// dump counts as done even if nobody hears CRIU's answer. An error makes CRIU resume the
	// workload and fails the dump.
	Dumped() error
}

// TreeClaim is the key a dump claims (Env.Claim; withcriu.Dump does) to dump the tree rooted at
// pid, and how the busy error names it.
func TreeClaim(pid int) (key, what string) {
	return fmt.Sprintf("tree:%d", pid), fmt.Sprintf("the process tree of PID %d", pid)
}
