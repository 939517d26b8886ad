package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// InternalCmd holds commands cedana runs itself; they are hidden from help.
type InternalCmd struct {
	LogCopy LogCopyCmd `cmd:"" name:"log-copy" help:"Append standard input to a file until end of input."`
}

// LogCopyCmd is `cedana internal log-copy <file>`: the daemon starts it, in its own session, as
// the reader of a container's output pipe, so that the container's output reaches its job's log
// even while no daemon runs.
type LogCopyCmd struct {
	Path string `arg:"" help:"File to append to."`
}

// Run copies stdin to the file.
func (c *LogCopyCmd) Run(env Env) error {
	f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open the log: %w", err)
	}
	_, err = io.Copy(f, os.Stdin)
	if errors.Is(err, syscall.EIO) {
		err = nil // a terminal's master reads EIO once the container has closed its side
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
