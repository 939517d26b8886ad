// Streamed requests: `criu dump --stream` and `criu restore --stream` run as commands, with the
// request's options as flags. CRIU's RPC cannot stream (see StreamArgs).

package criu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cedana/cedana/sysinfo"
)

// ErrNoFlag is wrapped by StreamArgs' error for an option that only CRIU's RPC has.
var ErrNoFlag = errors.New("no criu command-line flag")

// flagFields are the options StreamArgs turns into flags; any other option set in a request
// makes it fail (ErrNoFlag), so that a request is never streamed with an option dropped.
var flagFields = map[protoreflect.Name]bool{
	"images_dir_fd": true, "images_dir": true, "pid": true, "log_level": true, "log_file": true,
	"leave_running": true, "tcp_established": true, "shell_job": true, "file_locks": true,
	"root": true, "manage_cgroups": true, "manage_cgroups_mode": true, "ext_mnt": true,
	"external": true, "freeze_cgroup": true, "link_remap": true, "tcp_skip_in_flight": true,
	"rst_sibling": true, "tcp_close": true, "leave_stopped": true, "inherit_fd": true,
}

// StreamArgs turns a dump or restore request into the arguments of `criu dump|restore --stream
// -D dir`, or fails wrapping ErrNoFlag for an option that has no flag (orphan_pts_master, inherited
// fds, notify scripts, ...). CRIU streams only when run as a command: its RPC (criu swrk) opens the
// images directory with no dump/restore mode, which its streamer rejects with BUG() (SIGABRT), as
// of CRIU 4.1.1.
func StreamArgs(typ rpc.CriuReqType, opts *rpc.CriuOpts, dir string) ([]string, error) {
	var unsupported []string
	opts.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !flagFields[fd.Name()] {
			if fd.Kind() == protoreflect.BoolKind && !v.Bool() {
				return true // an option turned off says nothing
			}
			unsupported = append(unsupported, string(fd.Name()))
		}
		return true
	})
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("%w for option %s", ErrNoFlag, strings.Join(unsupported, ", "))
	}
	args := []string{reqName(typ), "--stream", "-D", dir}
	if typ == rpc.CriuReqType_DUMP {
		args = append(args, "-t", strconv.Itoa(int(opts.GetPid())))
	}
	if opts.LogFile != nil {
		args = append(args, "-o", opts.GetLogFile())
	}
	if opts.LogLevel != nil {
		args = append(args, "-v"+strconv.Itoa(int(opts.GetLogLevel())))
	}
	for _, b := range []struct {
		on   bool
		flag string
	}{
		{opts.GetLeaveRunning(), "--leave-running"},
		{opts.GetTcpEstablished(), "--tcp-established"},
		{opts.GetShellJob(), "--shell-job"},
		{opts.GetFileLocks(), "--file-locks"},
		{opts.GetLinkRemap(), "--link-remap"},
		{opts.GetTcpSkipInFlight(), "--skip-in-flight"},
		{opts.GetTcpClose(), "--tcp-close"},
		{opts.GetLeaveStopped(), "--leave-stopped"},
	} {
		if b.on {
			args = append(args, b.flag)
		}
	}
	if opts.GetRstSibling() {
		args = append(args, "--restore-detached", "--restore-sibling")
	}
	if opts.Root != nil {
		args = append(args, "--root", opts.GetRoot())
	}
	if opts.GetManageCgroups() {
		mode := strings.ToLower(opts.GetManageCgroupsMode().String())
		if mode == "default" || opts.ManageCgroupsMode == nil {
			args = append(args, "--manage-cgroups")
		} else {
			args = append(args, "--manage-cgroups="+mode)
		}
	}
	for _, m := range opts.GetExtMnt() {
		args = append(args, "--ext-mount-map", m.GetKey()+":"+m.GetVal())
	}
	for _, e := range opts.GetExternal() {
		args = append(args, "--external", e)
	}
	for _, in := range opts.GetInheritFd() {
		args = append(args, "--inherit-fd", fmt.Sprintf("fd[%d]:%s", in.GetFd(), in.GetKey()))
	}
	if opts.FreezeCgroup != nil {
		args = append(args, "--freeze-cgroup", opts.GetFreezeCgroup())
	}
	return args, nil
}

// restorePidFile is where a streamed restore has CRIU write the restored root's PID, in its
// images directory.
const restorePidFile = "criu-restore.pid"

// DumpStream dumps opts.Pid's tree with `criu dump --stream`, handing the images to the streamer
// listening in dir (criu/imgstream). call.Started, call.Stderr and call.ExtraFiles work as for
// Dump (ExtraFiles[i] is fd ExtraFileFD(i) in CRIU too); a request with Notify is refused. Cancelling ctx after CRIU started does not stop it. A CRIU that
// exits with a failure status (it resumed the tree) is an *Error; one killed by a signal is a
// *DiedError.
func (c *Client) DumpStream(ctx context.Context, opts *rpc.CriuOpts, dir string, call Call) error {
	if opts == nil || opts.GetPid() <= 0 {
		return errors.New("criu dump: opts.pid must be set to the root of the tree to dump")
	}
	_, err := c.runStream(ctx, rpc.CriuReqType_DUMP, opts, dir, call)
	return err
}

// RestoreStream restores with `criu restore --stream` from the streamer serving in dir and returns
// the restored root's PID. With opts.RstSibling the root is the caller's child, to be reaped.
func (c *Client) RestoreStream(ctx context.Context, opts *rpc.CriuOpts, dir string, call Call) (int32, error) {
	if opts == nil {
		return 0, errors.New("criu restore: opts must be set")
	}
	pidFile := filepath.Join(dir, restorePidFile)
	if _, err := c.runStream(ctx, rpc.CriuReqType_RESTORE, opts, dir, call, "--pidfile", pidFile); err != nil {
		return 0, err
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("criu restore: the restored process's pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("criu restore: pid file holds %q, not a pid", data)
	}
	return int32(pid), nil
}

// runStream runs one streamed request as a command.
func (c *Client) runStream(ctx context.Context, typ rpc.CriuReqType, opts *rpc.CriuOpts, dir string, call Call, extra ...string) (*exec.Cmd, error) {
	name := reqName(typ)
	if call.Notify != nil {
		return nil, fmt.Errorf("criu %s: a streamed request takes no notifications", name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	args, err := StreamArgs(typ, opts, dir)
	if err != nil {
		return nil, fmt.Errorf("criu %s: %w", name, err)
	}
	bin, err := c.binary()
	if err != nil {
		return nil, err
	}
	tail := &tailBuffer{}
	var out io.Writer = tail
	if call.Stderr != nil {
		out = io.MultiWriter(tail, errorlessWriter{call.Stderr})
	}
	cmd := command(context.Background(), bin, append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = Env()
	cmd.WaitDelay = waitDelay
	if len(call.ExtraFiles) > 0 {
		// The same fd numbers as in swrk, whose fd 3 is its socket: here fd 3 stays closed.
		cmd.ExtraFiles = append([]*os.File{nil}, call.ExtraFiles...)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("criu %s: starting %s: %w", name, bin, err)
	}
	// As for swrk: CRIU runs at normal priority even when the daemon runs niced. It may have begun
	// already, which only matters for its first milliseconds.
	_ = sysinfo.SetPriority(cmd.Process.Pid, sysinfo.Normal)
	if call.Started != nil {
		if err := call.Started(cmd.Process.Pid); err != nil {
			// Nothing may happen to the tree without the caller's record, but a command does not
			// wait for a request as swrk does: CRIU may have begun. It is stopped as a CRIU that
			// died, which the caller knows how to undo.
			_ = cmd.Process.Kill()
			return cmd, &DiedError{Type: typ, Err: fmt.Errorf("stopped: %w", err), Exit: cmd.Wait(), Output: tail.describe()}
		}
	}
	werr := cmd.Wait()
	if errors.Is(werr, exec.ErrWaitDelay) {
		werr = nil
	}
	var exit *exec.ExitError
	switch {
	case werr == nil:
		return cmd, nil
	case errors.As(werr, &exit) && exit.Exited():
		// CRIU failed and cleaned up after itself: a dump resumed the tree.
		return cmd, &Error{Type: typ, CrErrmsg: fmt.Sprintf("exit status %d%s", exit.ExitCode(), tail.describe())}
	default:
		return cmd, &DiedError{Type: typ, Err: errClosed, Exit: werr, Output: tail.describe()}
	}
}
