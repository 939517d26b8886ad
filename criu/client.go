// The Client: one CRIU request per `criu swrk` process, with its extra files and notifications.

package criu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/proto"
)

// swrkFD is the fd number of the RPC socket inside criu swrk.
const swrkFD = 3

// ExtraFileFD returns the fd number that Call.ExtraFiles[i] has inside the
// criu swrk process: fd 3 is the RPC socket, so the extra files are 4, 5, ...
// (3+1+i). Use it for options that criu resolves in its own fd table, e.g.
//
//	opts.InheritFd = append(opts.InheritFd, &rpc.InheritFd{
//		Key: proto.String("pipe:[12345]"),
//		Fd:  proto.Int32(criu.ExtraFileFD(0)),
//	})
func ExtraFileFD(i int) int32 {
	return int32(swrkFD + 1 + i)
}

// Client runs CRIU requests, each in its own `criu swrk` process.
//
// The zero value is usable: an empty Binary is resolved with FindBinary("")
// on every request. A Client holds no state, so one value may be used by
// many goroutines at once.
type Client struct {
	// Binary is the path to the criu binary.
	Binary string
}

// Call carries the per-request extras of Dump and Restore.
type Call struct {
	// ExtraFiles are passed to criu swrk; ExtraFiles[i] is fd ExtraFileFD(i)
	// inside criu (fd 3 is the swrk socket). Use these numbers to fill
	// rpc.CriuOpts.InheritFd and similar fd-valued options. The caller keeps
	// ownership of the files and closes them.
	ExtraFiles []*os.File

	// Notify is optional. When set, the request is sent with notify_scripts
	// and Notify is called for every notification criu sends ("pre-dump",
	// "post-dump", "network-lock", "network-unlock", "pre-restore",
	// "setup-namespaces", "post-setup-namespaces", "post-restore",
	// "pre-resume", "post-resume", "orphan-pts-master", "status-ready",
	// "query-ext-files", ...), with the pid criu attached to it (only
	// "setup-namespaces" and "post-restore" carry one, the restored root
	// pid; 0 otherwise). criu waits for Notify to return (during a dump
	// with the tasks frozen), so keep it short. A non-nil error is reported
	// to criu as a failed script, which makes criu abort the request (a
	// failed "post-dump" leaves the tree running); Notify is still called
	// for any notification criu sends while cleaning up, and the request
	// returns the first error.
	Notify func(script string, pid int32) error

	// Stderr is optional; it receives criu swrk's own stdout and stderr
	// (not its log file). Nil discards them.
	Stderr io.Writer

	// Started is optional. It is called with the PID of the criu swrk
	// process once it runs and before the request is sent: criu has touched
	// nothing yet. A non-nil error aborts the request (criu exits at once)
	// and is returned.
	Started func(pid int) error
}

// Version asks criu for its version with a CRIU_REQ_TYPE_VERSION request
// and returns it as major*10000 + minor*100 + sublevel, e.g. 40101 for
// CRIU 4.1.1. Unlike go-criu, a git build is not bumped to the next minor.
func (c *Client) Version(ctx context.Context) (int, error) {
	resp, err := c.do(ctx, rpc.CriuReqType_VERSION, nil, Call{})
	if err != nil {
		return 0, err
	}
	v := resp.GetVersion()
	if v == nil {
		return 0, errors.New("criu version: response carries no version")
	}
	return int(v.GetMajorNumber())*10000 + int(v.GetMinorNumber())*100 + int(v.GetSublevel()), nil
}

// Check runs `<Binary> check`. On failure the error contains criu's output,
// which names the missing kernel features.
func (c *Client) Check(ctx context.Context) error {
	bin, err := c.binary()
	if err != nil {
		return err
	}
	out, err := command(ctx, bin, "check").CombinedOutput()
	if err != nil {
		return fmt.Errorf("criu check failed: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Dump checkpoints the process tree rooted at opts.Pid, which must be set:
// criu would otherwise dump the calling process itself. opts is not
// modified (the request uses a copy); an unset ImagesDirFd is sent as -1,
// so opts.ImagesDir is honoured.
//
// Once the request has been sent, cancelling ctx does not stop the dump:
// killing criu mid-dump could leave the workload frozen. Dump returns when
// criu answers. The response is returned whenever criu answered, also along
// with an *Error when it answered success=false.
func (c *Client) Dump(ctx context.Context, opts *rpc.CriuOpts, call Call) (*rpc.CriuResp, error) {
	if opts == nil || opts.GetPid() <= 0 {
		return nil, errors.New("criu dump: opts.pid must be set to the root of the tree to dump")
	}
	return c.do(ctx, rpc.CriuReqType_DUMP, opts, call)
}

// Restore restores a process tree from the images in opts.ImagesDirFd (or
// opts.ImagesDir). opts is not modified (the request uses a copy).
//
// On success resp.GetRestore().GetPid() is the pid of the restored root
// process (taken from the "post-restore" notification if criu's final answer
// lacks it). Set opts.RstSibling so that the restored root becomes a child
// of the calling process rather than of criu swrk (which exits right after);
// the caller must then reap it. As with Dump, cancelling ctx after the
// request was sent does not stop criu.
func (c *Client) Restore(ctx context.Context, opts *rpc.CriuOpts, call Call) (*rpc.CriuResp, error) {
	if opts == nil {
		return nil, errors.New("criu restore: opts must be set")
	}
	return c.do(ctx, rpc.CriuReqType_RESTORE, opts, call)
}

// binary returns the criu binary to run.
func (c *Client) binary() (string, error) {
	if c != nil && c.Binary != "" {
		return c.Binary, nil
	}
	return FindBinary("")
}

// do runs one request in a fresh criu swrk process.
func (c *Client) do(ctx context.Context, typ rpc.CriuReqType, opts *rpc.CriuOpts, call Call) (*rpc.CriuResp, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := reqName(typ)
	bin, err := c.binary()
	if err != nil {
		return nil, err
	}

	req := &rpc.CriuReq{Type: typ.Enum()}
	if opts != nil {
		opts = proto.CloneOf(opts)
		if opts.ImagesDirFd == nil {
			opts.ImagesDirFd = proto.Int32(-1)
		}
		if call.Notify != nil {
			opts.NotifyScripts = proto.Bool(true)
		}
		req.Opts = opts
	}
	// Encode before starting criu so that bad options fail cheaply.
	first, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("criu %s: encoding request: %w", name, err)
	}

	s, err := startSwrk(bin, call)
	if err != nil {
		return nil, fmt.Errorf("criu %s: %w", name, err)
	}
	finished := false
	defer func() {
		// Only reached unfinished if Notify panicked: closing the socket
		// makes criu abort the request (a dump resumes the tree) and exit.
		if !finished {
			_ = s.finish()
		}
	}()
	if err := ctx.Err(); err != nil {
		finished = true
		_ = s.finish() // criu sees EOF instead of a request and exits
		return nil, err
	}
	if call.Started != nil {
		if err := call.Started(s.cmd.Process.Pid); err != nil {
			finished = true
			_ = s.finish()
			return nil, fmt.Errorf("criu %s: %w", name, err)
		}
	}

	resp, err := s.exchange(typ, first, call.Notify)
	finished = true
	werr := s.finish()
	if resp == nil {
		// No final answer: criu died or the socket broke. Its exit status
		// and output say more than the socket error.
		return nil, &DiedError{Type: typ, Err: err, Exit: werr, Output: s.tail.describe()}
	}
	// criu's exit status is not checked once it has answered: the answer is
	// authoritative (e.g. a successful dump has already killed the tree).
	return resp, err
}
