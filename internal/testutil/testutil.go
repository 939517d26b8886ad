// Package testutil holds what the tests of several packages share: requirements on the machine
// (root, CRIU, a program) that skip a test where they are not met, except under CI=true, where a
// missing requirement fails the test instead, since a CI machine is set up to run every test.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cedana/cedana/criu"
)

// SkipUnlessCI skips t for reason, or fails it when the CI environment variable is "true".
func SkipUnlessCI(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s", reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or, under CI=true, fails) a test that is not run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipUnlessCI(t, "the test needs root")
	}
}

// RequireTool returns the path of program name, found in $PATH, and skips (or, under CI=true,
// fails) the test when there is none.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		SkipUnlessCI(t, fmt.Sprintf("%s is not installed (`just deps` installs it): %v", name, err))
	}
	return path
}

// RequireCRIU returns a client of the machine's CRIU (CEDANA_CRIU_BINARY_PATH, or the one the
// daemon would find) for a test that needs it and root, and skips (or, under CI=true, fails)
// the test without them.
func RequireCRIU(t testing.TB) *criu.Client {
	t.Helper()
	RequireRoot(t)
	bin, err := criu.FindBinary(os.Getenv("CEDANA_CRIU_BINARY_PATH"))
	if err != nil {
		SkipUnlessCI(t, fmt.Sprintf("CRIU cannot run here: %v", err))
	}
	return &criu.Client{Binary: bin}
}

// Stop ends a process a test started, as SIGTERM asks, and kills it if it has not exited after
// grace. It returns once exited (closed when the process's Wait has returned) is closed, and
// reports whether the process had to be killed.
func Stop(p *os.Process, exited <-chan struct{}, grace time.Duration) (killed bool) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return false
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
		return true
	}
}
