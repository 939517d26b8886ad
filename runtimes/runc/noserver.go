package runc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
	"github.com/cedana/cedana/store"
)

// RunInProcess runs the container a RunRequest describes with `runc run`, a child of this
// process: `cedana run --no-server runc`. In the foreground, the container's stdio are stdio and
// runc exits with the container's exit code. With detach, `runc run --detach` returns once the
// container runs, and runc keeps it; its stdout and stderr are then the --out file or /dev/null,
// never this command's (they would stay open while the container runs).
func RunInProcess(req *daemonv1.RunRequest, stdio features.Stdio) (*os.Process, error) {
	d := req.GetRunc()
	if d.GetBundle() == "" {
		return nil, errors.New("give the container's --bundle")
	}
	if _, err := readBundle(d.Bundle); err != nil {
		return nil, err
	}
	id := cmp.Or(d.Id, req.Jid)
	if id == "" {
		id = store.NewJID()
		fmt.Fprintf(stdio.Stderr, "Container ID: %s\n", id)
	}
	root := cmp.Or(d.Root, DefaultRoot)
	if runcshared.Exists(root, id) {
		return nil, fmt.Errorf("runc already has a container %q under %s: choose another --id", id, root)
	}
	if d.Detach {
		in := runcshared.Invocation{Root: root, Args: []string{"run", "--detach", "--bundle", d.Bundle, id}}
		if req.Log != "" {
			out, ok := stdio.Stdout.(*os.File)
			if !ok {
				return nil, errors.New("--out with --detach needs a file")
			}
			in.Stdout = out
		}
		if err := in.Run(context.Background()); err != nil {
			return nil, err
		}
		c, err := runcshared.Load(root, id)
		if err != nil {
			return nil, err
		}
		return os.FindProcess(c.PID())
	}
	cmd, err := runcshared.Command(root, "run", "--bundle", d.Bundle, id)
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start runc: %w", err)
	}
	return cmd.Process, nil
}
