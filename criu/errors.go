// How a request fails: criu answered no (Error), or criu ended without answering (DiedError).

package criu

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"golang.org/x/sys/unix"
)

// errClosed is what the exchange sees when criu closes its socket (by exiting, mostly).
var errClosed = errors.New("criu swrk closed the connection without answering")

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
// depends on how far criu had come (see withcriu.Dump).
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
	//nolint:errorlint // only the bare socket closing says nothing more than how criu ended
	if e.Err != nil && e.Err != errClosed {
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
