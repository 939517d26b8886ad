// Package withcriu ends dump and restore chains with the daemon's own CRIU (criu swrk): the
// handlers most runtimes register, and what puts a tree back as it was when CRIU dies mid-dump.
package withcriu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"github.com/checkpoint-restore/go-criu/v8/stats"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/criu/imgstream"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// Dump is the handler that dumps resp.Checkpoint.Pid's tree into st.ImageDir with CRIU.
// A tree another request is dumping is refused as busy (env.Claim). On failure CRIU has resumed
// the tree; the error quotes the log lines that explain it and keeps the whole log in the
// system's temporary directory, since the partial checkpoint is removed.
//
// CRIU's post-dump notification is always asked for: it runs st.DumpFrozen and records the
// dump as done in st.Journal. Left unanswered (the daemon died), it makes CRIU resume the tree
// rather than kill it with nobody left to record the checkpoint. When CRIU itself dies without
// answering, its ptrace hold ends with it and the tree runs on: Dump thaws a cgroup CRIU
// left frozen, continues processes it left stopped and says in the error what became of the tree.
// If CRIU died after the dump was done (the post-dump notification answered), the checkpoint is
// complete: Dump finishes CRIU's work, stopping what is left of the tree unless
// --leave-running, and succeeds. It reports the workload checkpointed exactly when it succeeds.
func Dump(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
	pid := resp.GetCheckpoint().GetPid()
	if pid <= 0 {
		return false, fmt.Errorf("runtime %s named no process to dump", req.Type)
	}
	if env.Claim != nil {
		release, err := env.Claim(adapters.TreeClaim(int(pid)))
		if err != nil {
			return false, err
		}
		defer release()
	}
	dir, criuOpts, err := openImages(st.ImageDir, checkpoint.DumpLog, env.CRIULogLevel, req.Criu)
	if err != nil {
		return false, err
	}
	defer dir.Close()
	criuOpts.Pid = proto.Int32(pid)
	criuOpts.LeaveRunning = proto.Bool(req.Criu.LeaveRunning)
	criuOpts.LeaveStopped = proto.Bool(req.Criu.LeaveStopped)
	criuOpts.LinkRemap = proto.Bool(req.Criu.LinkRemap)
	criuOpts.TcpSkipInFlight = proto.Bool(req.Criu.SkipInFlight)
	for _, add := range st.DumpCRIU {
		add(criuOpts)
	}
	before := snapshotTree(int(pid), criuOpts.GetFreezeCgroup())
	if ds := st.DumpStream; ds != nil {
		why := ""
		if len(st.DumpFrozen) > 0 {
			why = "the runtime captures state while CRIU holds the tree frozen (a container's writable layer for --rootfs, " +
				"an image commit for --image), in CRIU's post-dump notification, which only CRIU's RPC delivers and CRIU's RPC cannot stream"
		} else if _, err := criu.StreamArgs(rpc.CriuReqType_DUMP, criuOpts, st.ImageDir); err != nil {
			why = err.Error()
		} else {
			why = ds.Unfit(int(pid))
		}
		if why == "" {
			return dumpStreamed(ctx, env, st, req, resp, criuOpts, dir, before)
		}
		if err := ds.Decline(why); err != nil {
			return false, err
		}
	}
	done := false // the post-dump notification was answered: the images are complete
	var marks timings
	call := criu.Call{Notify: func(script string, _ int32) error {
		if script != "post-dump" {
			return nil
		}
		marks.mark("criu_to_post_dump")
		defer marks.mark("post_dump_answer")
		for _, capture := range st.DumpFrozen {
			if err := capture(); err != nil {
				return err
			}
		}
		if st.Journal != nil {
			if err := st.Journal.Dumped(); err != nil {
				return fmt.Errorf("record the dump as done: %w", err)
			}
		}
		done = true
		return nil
	}}
	call.Started = journalStarted(env, st, req, resp, &marks)
	start := time.Now()
	marks.start = start
	_, err = env.CRIU.Dump(ctx, criuOpts, call)
	adapters.Observe(resp.Stats, "criu_dump", start)
	marks.mark("criu_answer")
	defer func() { st.Log.Debug("criu dump timings", marks.attrs...) }()
	var died *criu.DiedError
	switch {
	case err != nil && errors.As(err, &died) && done:
		st.Log.Warn("CRIU died after the dump was done: the checkpoint is complete", "error", err)
		if req.Criu.LeaveRunning {
			before.resume()
		} else {
			before.kill()
		}
	case err != nil && errors.As(err, &died):
		return false, criuFailure(fmt.Errorf("%w; %s", err, before.resume()), env, st.ImageDir, checkpoint.DumpLog, fmt.Sprintf("cedana-%s.dump.log", req.Name))
	case err != nil:
		return false, criuFailure(err, env, st.ImageDir, checkpoint.DumpLog, fmt.Sprintf("cedana-%s.dump.log", req.Name))
	}
	dumpDone(env, st, resp, dir)
	marks.mark("stats_and_pids")
	return true, nil
}

// journalStarted is the Started callback that records the CRIU process in the dump's journal;
// nil without a journal.
func journalStarted(env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse, marks *timings) func(int) error {
	if st.Journal == nil {
		return nil
	}
	return func(criuPID int) error {
		marks.mark("criu_spawn")
		defer marks.mark("journal_started")
		ck := proto.CloneOf(resp.Checkpoint)
		ck.Options = proto.CloneOf(req.Criu)
		ck.CriuVersion = env.CRIUVersion
		if err := st.Journal.Started(criuPID, ck); err != nil {
			return fmt.Errorf("record the dump: %w", err)
		}
		return nil
	}
}

// dumpDone records what a successful dump tells: CRIU's version, its frozen time (from the
// stats-dump file CRIU writes into the images directory, streamed or not) and the PIDs it dumped.
func dumpDone(env *adapters.Env, st adapters.State, resp *daemonv1.DumpResponse, dir *os.File) {
	resp.Checkpoint.CriuVersion = env.CRIUVersion
	if s, err := stats.CriuGetDumpStats(dir); err == nil && resp.Stats != nil {
		resp.Stats.Frozen = durationpb.New(time.Duration(s.GetFrozenTime()) * time.Microsecond)
	}
	if pids := checkpoint.DumpedPIDs(st.ImageDir, resp.Checkpoint.Pid); len(pids) > 0 {
		resp.Checkpoint.Pids = pids
	}
}

// dumpStreamed dumps with `criu dump --stream`, CRIU handing its images to st.DumpStream's capture
// in st.ImageDir. There is no post-dump notification: the images are complete only once the
// archive is, so the journal never records this dump as done, and a daemon killed before the
// archive is complete rolls it back. A CRIU that dies is handled as in Dump.
func dumpStreamed(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse,
	criuOpts *rpc.CriuOpts, dir *os.File, before treeBefore,
) (adapters.Dumped, error) {
	short := fdPath(dir)
	capture, err := st.DumpStream.Capture(short)
	if err != nil {
		return false, err
	}
	var marks timings
	start := time.Now()
	marks.start = start
	err = env.CRIU.DumpStream(ctx, criuOpts, short, criu.Call{Started: journalStarted(env, st, req, resp, &marks)})
	adapters.Observe(resp.Stats, "criu_dump", start)
	marks.mark("criu_exit")
	defer func() { st.Log.Debug("criu dump --stream timings", marks.attrs...) }()
	var died *criu.DiedError
	switch {
	case err != nil && errors.As(err, &died):
		return false, criuFailure(fmt.Errorf("%w; %s", err, before.resume()), env, st.ImageDir, checkpoint.DumpLog, fmt.Sprintf("cedana-%s.dump.log", req.Name))
	case err != nil:
		return false, criuFailure(err, env, st.ImageDir, checkpoint.DumpLog, fmt.Sprintf("cedana-%s.dump.log", req.Name))
	}
	dumpDone(env, st, resp, dir)
	// The pstree image went into the capture, not into the directory dumpDone reads.
	pids, err := streamedPIDs(capture)
	if err != nil {
		st.Log.Warn("the checkpoint lists the PIDs /proc showed before the dump", "err", err)
	} else {
		resp.Checkpoint.Pids = pids
	}
	return true, nil
}

// streamedPIDs reads the dumped PIDs from the pstree image CRIU streamed into c.
func streamedPIDs(c *imgstream.Capture) ([]int32, error) {
	img, err := c.Image(checkpoint.PstreeImage)
	if err != nil {
		return nil, err
	}
	return checkpoint.TreePIDs(img)
}

// Restore is the handler that restores the checkpoint in st.ImageDir as a child of the
// calling process (CRIU's restore-sibling mode), which must reap it. With req.Lazy it returns as
// soon as the tree runs, its memory served by CRIU's lazy-pages server (restoreLazy).
func Restore(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
	dir, criuOpts, err := openImages(st.ImageDir, checkpoint.RestoreLog, env.CRIULogLevel, req.Criu)
	if err != nil {
		return err
	}
	defer dir.Close()
	criuOpts.RstSibling = proto.Bool(true)
	criuOpts.TcpClose = proto.Bool(req.Criu.TcpClose)
	criuOpts.LeaveStopped = proto.Bool(req.Criu.LeaveStopped)
	call := inherit(criuOpts, st.Inherit)
	if req.Lazy {
		return restoreLazy(ctx, env, st, resp, criuOpts, call)
	}
	if rs := st.RestoreStream; rs.Pending() {
		if _, err := criu.StreamArgs(rpc.CriuReqType_RESTORE, criuOpts, st.ImageDir); err != nil {
			if err := rs.Extract(err.Error()); err != nil {
				return err
			}
		} else {
			return restoreStreamed(ctx, env, st, resp, criuOpts, dir, call)
		}
	}
	start := time.Now()
	out, err := env.CRIU.Restore(ctx, criuOpts, call)
	adapters.Observe(resp.Stats, "criu_restore", start)
	if err != nil {
		reapFailed(resp.GetCheckpoint().GetPid())
		return criuFailure(err, env, st.ImageDir, checkpoint.RestoreLog, "")
	}
	resp.Pid = out.GetRestore().GetPid()
	return nil
}

// inherit has CRIU give the restored tree each of files in place of the file it had open at that
// path (CRIU names a regular file or FIFO by its path without the leading slash).
func inherit(opts *rpc.CriuOpts, files []adapters.Inherited) criu.Call {
	var call criu.Call
	for i, f := range files {
		opts.InheritFd = append(opts.InheritFd, &rpc.InheritFd{
			Key: proto.String(strings.TrimPrefix(f.Path, "/")),
			Fd:  proto.Int32(criu.ExtraFileFD(i)),
		})
		call.ExtraFiles = append(call.ExtraFiles, f.File)
	}
	return call
}

// restoreStreamed restores with `criu restore --stream`, fed from st.RestoreStream's archive.
func restoreStreamed(ctx context.Context, env *adapters.Env, st adapters.State, resp *daemonv1.RestoreResponse, criuOpts *rpc.CriuOpts, dir *os.File, call criu.Call) error {
	short := fdPath(dir)
	srv, err := st.RestoreStream.Serve(short)
	if err != nil {
		return err
	}
	start := time.Now()
	pid, err := env.CRIU.RestoreStream(ctx, criuOpts, short, call)
	adapters.Observe(resp.Stats, "criu_restore", start)
	if err != nil {
		srv.Abort()
		reapFailed(resp.GetCheckpoint().GetPid())
		if _, serr := srv.Wait(); serr != nil {
			// What CRIU got was cut short: the archive is the problem, not CRIU.
			return errs.Invalid("the checkpoint's archive cannot be read: %w (%w)", serr, err)
		}
		return criuFailure(err, env, st.ImageDir, checkpoint.RestoreLog, "")
	}
	sent, err := srv.Wait()
	if err != nil {
		st.Log.Warn("restored, but serving the images ended with an error", "error", err)
	}
	if resp.Stats != nil {
		resp.Stats.RawBytes = sent
	}
	resp.Pid = pid
	return nil
}

// reapFailed reaps the root of a restore that failed: restored as our child (restore-sibling),
// CRIU killed it, and nobody else waits for it. The PID was free before the restore, so a child
// of ours with it can only be that root. It waits a moment for the kill to land.
func reapFailed(pid int32) {
	if pid <= 0 {
		return
	}
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 1000)
	var ws unix.WaitStatus
	_, _ = unix.Wait4(int(pid), &ws, unix.WNOHANG, nil)
}

// fdPath names the open directory dir through /proc: the streamer's socket is made in the images
// directory, and a unix socket's path must be short (108 bytes), which a checkpoint's directory
// under a long --dir or checkpoint.temp_dir may not be.
func fdPath(dir *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), dir.Fd())
}

// openImages opens the image directory and builds the CRIU options dump and restore share, with
// CRIU's log at logLevel (CRIU's default, 2, when 0: an Env built without a configuration). The
// directory must stay open until CRIU is done: CRIU reads it through our file descriptor.
func openImages(imageDir, logName string, logLevel int32, c *daemonv1.CriuOptions) (*os.File, *rpc.CriuOpts, error) {
	dir, err := os.Open(imageDir)
	if err != nil {
		return nil, nil, fmt.Errorf("open checkpoint directory: %w", err)
	}
	return dir, &rpc.CriuOpts{
		ImagesDirFd:    proto.Int32(int32(dir.Fd())),
		LogFile:        proto.String(logName),
		LogLevel:       proto.Int32(cmp.Or(logLevel, config.DefaultCRIULogLevel)),
		TcpEstablished: proto.Bool(c.TcpEstablished),
		FileLocks:      proto.Bool(c.FileLocks),
		ShellJob:       proto.Bool(c.ShellJob),
		External:       c.External,
	}, nil
}

// criuFailure builds a one-line error from CRIU's error and its log's error lines. When keepAs is
// set the log is copied to the temporary directory under that name, since its directory will go.
// A log written below level 4 has CRIU's errors and warnings only: the message says how to get
// every step.
func criuFailure(err error, env *adapters.Env, dir, logName, keepAs string) error {
	logPath := filepath.Join(dir, logName)
	msg := criu.LogQuote(logPath)
	if keepAs != "" {
		kept := filepath.Join(os.TempDir(), keepAs)
		if copyFile(logPath, kept) == nil {
			logPath = kept
		} else {
			logPath = ""
		}
	}
	if logPath != "" {
		msg += "; full log: " + logPath
		if cmp.Or(env.CRIULogLevel, config.DefaultCRIULogLevel) < 4 {
			msg += " (set criu.log_level to 4 to log every step)"
		}
	}
	return errs.Precondition("%w%s", err, msg)
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
