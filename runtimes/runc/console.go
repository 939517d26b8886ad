package runc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// consoleSocket receives the pty master of a container with a terminal (process.terminal): runc
// sends it over a unix socket (--console-socket) when it starts or restores such a container.
// The master is handed to a `cedana internal log-copy` process of its own, which keeps it open
// and copies the terminal's output to a log, so that the container keeps its terminal while the
// daemon restarts.
type consoleSocket struct {
	dir  string
	path string
	ln   *net.UnixListener
	got  chan error
}

// newConsoleSocket listens on a fresh socket; the master it receives goes to logPath.
func newConsoleSocket(logPath string) (*consoleSocket, error) {
	dir, err := os.MkdirTemp("", "cedana-console-")
	if err != nil {
		return nil, err
	}
	cs := &consoleSocket{dir: dir, path: filepath.Join(dir, "console.sock"), got: make(chan error, 1)}
	cs.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: cs.path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listen for the container's console: %w", err)
	}
	go func() { cs.got <- cs.receive(logPath) }()
	return cs, nil
}

// receive accepts runc's connection, takes the master from it and starts its reader.
func (cs *consoleSocket) receive(logPath string) error {
	conn, err := cs.ln.AcceptUnix()
	if err != nil {
		return err
	}
	defer conn.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return fmt.Errorf("receive the console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return errors.New("runc sent no console")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return errors.New("runc sent no console descriptor")
	}
	master := os.NewFile(uintptr(fds[0]), "console")
	defer master.Close()
	return startLogCopy(master, logPath)
}

// wait waits until the master has been received and handed over, after runc has succeeded.
func (cs *consoleSocket) wait(ctx context.Context) error {
	select {
	case err := <-cs.got:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("runc did not send the container's console")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops listening and removes the socket.
func (cs *consoleSocket) close() {
	cs.ln.Close()
	os.RemoveAll(cs.dir)
}
