// One `criu swrk` process: started with its socket and extra files, then the request, the
// notifications and the answer exchanged over SOCK_SEQPACKET.

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
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/sysinfo"
)

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

	cmd := command(context.Background(), bin, "swrk", fmt.Sprint(swrkFD))
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
