// Package criutest gives tests the machine's CRIU.
package criutest

import (
	"errors"
	"os"
	"testing"

	"github.com/cedana/cedana/criu"
)

// Require returns a client of the machine's CRIU for a test that needs it and root: without them
// the test is skipped, except under CI=true, where it fails.
func Require(t testing.TB) *criu.Client {
	t.Helper()
	bin, err := criu.FindBinary("")
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("not root")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but CRIU cannot run here: %v", err)
		}
		t.Skipf("CRIU cannot run here: %v", err)
	}
	return &criu.Client{Binary: bin}
}
