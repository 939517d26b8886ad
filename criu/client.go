package criu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/sysinfo"
)

// errClosed is what the exchange sees when criu closes its socket (by exiting, mostly).
var errClosed = errors.New("criu swrk closed the connection without answering")

// swrkFD is the fd number of the RPC socket inside criu swrk.
const swrkFD = 3

// waitDelay bounds how long Wait keeps reading criu's output after criu has
// exited, in case a process it forked still holds the output pipe.
const waitDelay = 5 * time.Second

// noBreakpointsFault is the CRIU_FAULT value of CRIU's FI_NO_BREAKPOINTS
// fault-injection point: criu then steps tasks out of the parasite and the
// restorer with PTRACE_SYSCALL instead of hardware breakpoints.
const noBreakpointsFault = "130"

// stderrTailSize is how much of criu's own output is kept to explain a criu
// swrk process that exits without answering.
const stderrTailSize = 4096

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

// Error is returned when criu answers a request with success=false.
type Error struct {
	// Type is the type of the request that failed, e.g. rpc.CriuReqType_DUMP.
	Type rpc.CriuReqType
	// CrErrno is criu's cr_errno for the failure; often 0, in which case only
	// the log file says what went wrong (see LogErrors).
	CrErrno int32
	// CrErrmsg is criu's cr_errmsg as sent: the first error line of the
	// log. That is often the harmless RLIMIT_NOFILE line (criu logs it at
	// error level on every start where it cannot raise its fd limit), which
	// Error() leaves out; LogErrors finds the lines that matter.
	CrErrmsg string
}

// Error implements error, e.g. "criu dump failed: <errmsg> (errno N)".
func (e *Error) Error() string {
	msg := strings.TrimSpace(e.CrErrmsg)
	if isHarmless(msg) {
		msg = ""
	}
	if msg == "" {
		return fmt.Sprintf("criu %s failed (errno %d)", reqName(e.Type), e.CrErrno)
	}
	return fmt.Sprintf("criu %s failed: %s (errno %d)", reqName(e.Type), msg, e.CrErrno)
}

// DiedError is returned when criu swrk ends, or closes its socket, without
// answering a request: it was killed (e.g. by the OOM killer), crashed, or
// exited. A dump's workload is then no longer traced by criu; whether it runs
// depends on how far criu had come (see adapters.DumpWithCRIU).
type DiedError struct {
	// Type is the type of the request that got no answer.
	Type rpc.CriuReqType
	// Err is what the exchange with criu saw (often the socket closing).
	Err error
	// Exit is how the criu process ended (an *exec.ExitError), nil when it
	// exited with status 0.
	Exit error
	// Output is the tail of criu's own stdout and stderr as "; output: ...",
	// "" when it printed nothing.
	Output string
}

// Error implements error, e.g. "criu dump: criu died without answering:
// killed by signal SIGKILL (...)".
func (e *DiedError) Error() string {
	how := "criu closed the connection without answering"
	var exit *exec.ExitError
	if sig, ok := e.Killed(); ok {
		how = "criu died without answering: killed by signal " + unix.SignalName(sig)
	} else if errors.As(e.Exit, &exit) {
		how = fmt.Sprintf("criu exited without answering (exit status %d)", exit.ExitCode())
	} else if e.Exit != nil {
		how = fmt.Sprintf("criu ended without answering (%v)", e.Exit)
	}
	if e.Err != nil && e.Err != errClosed { // the socket closing says nothing more than how criu ended
		how = fmt.Sprintf("%s (%v)", how, e.Err)
	}
	return fmt.Sprintf("criu %s: %s%s", reqName(e.Type), how, e.Output)
}

// Unwrap returns what the exchange saw and how criu ended.
func (e *DiedError) Unwrap() []error {
	if e.Exit == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Exit}
}

// Killed reports whether criu was killed by a signal, and which.
func (e *DiedError) Killed() (syscall.Signal, bool) {
	var exit *exec.ExitError
	if errors.As(e.Exit, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal(), true
		}
	}
	return 0, false
}

// reqName turns a request type into a lower-case name: DUMP -> "dump",
// PRE_DUMP -> "pre-dump".
func reqName(t rpc.CriuReqType) string {
	return strings.ReplaceAll(strings.ToLower(t.String()), "_", "-")
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
	// #nosec G204 -- the binary is configured by the operator.
	out, err := exec.CommandContext(ctx, bin, "check").CombinedOutput()
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

// swrk is one running `criu swrk 3` process and our end of its socket.
type swrk struct {
	cmd  *exec.Cmd
	sock *os.File
	tail *tailBuffer
}

// startSwrk creates the socketpair and starts `<bin> swrk 3` with the child
// end as fd 3 and call.ExtraFiles from fd 4 on.
func startSwrk(bin string, call Call) (*swrk, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating swrk socketpair: %w", err)
	}
	// Our end is non-blocking so that os.File uses the runtime poller.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("creating swrk socketpair: %w", err)
	}
	sock := os.NewFile(uintptr(fds[0]), "criu-swrk-client")
	child := os.NewFile(uintptr(fds[1]), "criu-swrk-server")
	defer child.Close() // criu has its own copy once started

	tail := &tailBuffer{}
	var out io.Writer = tail
	if call.Stderr != nil {
		out = io.MultiWriter(tail, errorlessWriter{call.Stderr})
	}

	// #nosec G204 -- the binary is configured by the operator.
	cmd := exec.Command(bin, "swrk", fmt.Sprint(swrkFD))
	cmd.ExtraFiles = append([]*os.File{child}, call.ExtraFiles...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = Env()
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		sock.Close()
		return nil, fmt.Errorf("starting %s swrk: %w", bin, err)
	}
	// CRIU runs at normal priority even when the caller runs niced (as the daemon does, so that
	// its compression never slows a dump down); restored processes inherit it. It waits for the
	// request, so it is reset before it does any work.
	_ = sysinfo.SetPriority(cmd.Process.Pid, sysinfo.Normal)
	return &swrk{cmd: cmd, sock: sock, tail: tail}, nil
}

// Env returns the environment for a criu process (our swrk, or one a container runtime starts): ours, plus
// CRIU_FAULT=130 (no hardware breakpoints) unless CRIU_FAULT is already set.
//
// CRIU (4.1.1 at least) uses x86 debug registers to catch a task leaving the
// parasite (dump) or the restorer (restore) without checking that they work
// (upstream added such a check in checkpoint-restore/criu#2660). In VMs
// that do not virtualize them (Firecracker, AMD SEV) the breakpoint never
// fires and criu waits forever in wait4() with the tree frozen. Stepping with
// PTRACE_SYSCALL works everywhere and costs a few more ptrace stops per task.
func Env() []string {
	env := os.Environ()
	if _, ok := os.LookupEnv("CRIU_FAULT"); !ok {
		env = append(env, "CRIU_FAULT="+noBreakpointsFault)
	}
	return env
}

// finish closes our end of the socket, so criu stops waiting for requests,
// and waits for the criu swrk process by its pid only.
func (s *swrk) finish() error {
	s.sock.Close()
	err := s.cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		// criu exited fine; something it forked kept the output pipe open.
		err = nil
	}
	return err
}

// exchange sends the encoded request and serves notifications until the
// final answer. resp is nil only when no final answer arrived.
func (s *swrk) exchange(typ rpc.CriuReqType, first []byte, notify func(string, int32) error) (*rpc.CriuResp, error) {
	name := reqName(typ)
	if err := s.send(first); err != nil {
		return nil, err
	}

	var (
		notifyErr   error
		restoredPid int32
	)
	for {
		resp, err := s.recv()
		if err != nil {
			if notifyErr != nil {
				err = fmt.Errorf("%w; %w", notifyErr, err)
			}
			return nil, err
		}

		if resp.GetType() == rpc.CriuReqType_NOTIFY {
			script := resp.GetNotify().GetScript()
			pid := resp.GetNotify().GetPid()
			if script == "post-restore" && pid > 0 {
				restoredPid = pid
			}
			ok := true
			if notify != nil {
				if err := notify(script, pid); err != nil {
					ok = false
					if notifyErr == nil {
						notifyErr = fmt.Errorf("%q notify callback failed: %w", script, err)
					}
				}
			}
			ack, err := proto.Marshal(&rpc.CriuReq{
				Type:          rpc.CriuReqType_NOTIFY.Enum(),
				NotifySuccess: proto.Bool(ok),
			})
			if err != nil {
				return nil, fmt.Errorf("encoding notify answer: %w", err)
			}
			if err := s.send(ack); err != nil {
				if notifyErr != nil {
					err = fmt.Errorf("%w; %w", notifyErr, err)
				}
				return nil, err
			}
			continue
		}

		if !resp.GetSuccess() {
			cerr := &Error{Type: typ, CrErrno: resp.GetCrErrno(), CrErrmsg: resp.GetCrErrmsg()}
			if notifyErr != nil {
				return resp, fmt.Errorf("criu %s aborted: %w: %w", name, notifyErr, cerr)
			}
			return resp, cerr
		}
		if resp.GetType() != typ {
			return resp, fmt.Errorf("criu %s: unexpected response type %s", name, resp.GetType())
		}
		if typ == rpc.CriuReqType_RESTORE && resp.GetRestore().GetPid() <= 0 && restoredPid > 0 {
			if resp.Restore == nil {
				resp.Restore = &rpc.CriuRestoreResp{}
			}
			resp.Restore.Pid = proto.Int32(restoredPid)
		}
		if notifyErr != nil {
			// criu went on although the callback failed; the caller still
			// gets to know.
			return resp, fmt.Errorf("criu %s: %w", name, notifyErr)
		}
		return resp, nil
	}
}

// send writes one message; a SOCK_SEQPACKET write is one whole record.
func (s *swrk) send(b []byte) error {
	if _, err := s.sock.Write(b); err != nil {
		return fmt.Errorf("sending to criu swrk: %w", err)
	}
	return nil
}

// recv reads one whole message, sized beforehand with MSG_PEEK|MSG_TRUNC so
// that no answer is ever truncated. Ancillary data (the fd criu attaches to
// an "orphan-pts-master" notification) is not accepted; the kernel closes
// such fds.
func (s *swrk) recv() (*rpc.CriuResp, error) {
	rc, err := s.sock.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("receiving from criu swrk: %w", err)
	}

	var (
		size  int
		opErr error
	)
	err = rc.Read(func(fd uintptr) bool {
		size, _, _, _, opErr = unix.Recvmsg(int(fd), nil, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		return !errors.Is(opErr, unix.EAGAIN)
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return nil, fmt.Errorf("receiving from criu swrk: %w", err)
	}
	if size == 0 {
		// criu never sends empty messages: this is the end of the stream.
		return nil, errClosed
	}

	buf := make([]byte, size)
	var n, flags int
	err = rc.Read(func(fd uintptr) bool {
		n, _, flags, _, opErr = unix.Recvmsg(int(fd), buf, nil, 0)
		return !errors.Is(opErr, unix.EAGAIN)
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return nil, fmt.Errorf("receiving from criu swrk: %w", err)
	}
	if flags&unix.MSG_TRUNC != 0 {
		return nil, fmt.Errorf("receiving from criu swrk: message truncated at %d bytes", n)
	}

	resp := &rpc.CriuResp{}
	if err := proto.Unmarshal(buf[:n], resp); err != nil {
		return nil, fmt.Errorf("decoding criu swrk response: %w", err)
	}
	return resp, nil
}

// tailBuffer keeps the last stderrTailSize bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrTailSize; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// describe returns "; output: ..." with the kept output, or "" if none.
func (t *tailBuffer) describe() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := strings.TrimSpace(string(t.buf))
	if out == "" {
		return ""
	}
	return "; output: " + out
}

// errorlessWriter hides the caller's write errors, so a failing Stderr
// cannot stall criu's output pipe.
type errorlessWriter struct{ w io.Writer }

// Write implements io.Writer.
func (e errorlessWriter) Write(p []byte) (int, error) {
	_, _ = e.w.Write(p)
	return len(p), nil
}
