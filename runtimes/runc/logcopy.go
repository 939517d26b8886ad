package runc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/cedana/cedana/features"
)

// logCopy is the helper that reads a container's output (a pipe, or its terminal's master) and
// appends it to a log file, until end of input: `cedana internal log-copy <file>`. The daemon
// starts it in its own session, so that the output reaches the job's log even while no daemon
// runs.
var logCopy = features.Helper{Name: "log-copy", Main: copyLog}

// copyLog appends stdin to the file its one argument names.
func copyLog(_ context.Context, args []string, stdio features.Stdio) error {
	if len(args) != 1 {
		return fmt.Errorf("log-copy takes one argument, the file to append to; got %d", len(args))
	}
	if stdio.Stdin == nil {
		return errors.New("log-copy has no standard input to copy")
	}
	f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open the log: %w", err)
	}
	_, err = io.Copy(f, stdio.Stdin)
	if errors.Is(err, syscall.EIO) {
		err = nil // a terminal's master reads EIO once the container has closed its side
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
