// Lazy restores: `criu lazy-pages`, the server that hands a lazily restored tree its memory through
// userfaultfd, run as a command beside the restore (`restore` with opts.LazyPages).

package criu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/sysinfo"
)

// LazyFeature is the `criu check --feature` a lazy restore of a process tree needs: userfaultfd
// with the non-cooperative events (fork, remap, unmap) that CRIU's lazy-pages server follows.
const LazyFeature = "uffd-noncoop"

// LazyPagesLog is the log the lazy-pages server writes into the images directory.
const LazyPagesLog = "lazy-pages.log"

// CheckFeature runs `criu check --feature name`; the error quotes CRIU's answer.
func (c *Client) CheckFeature(ctx context.Context, name string) error {
	bin, err := c.binary()
	if err != nil {
		return err
	}
	cmd := command(ctx, bin, "check", "--feature", name)
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("criu check --feature %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// LazyServer is a running `criu lazy-pages`: it listens on lazy-pages.socket in the images
// directory for the restore, then serves every page of the restored tree from the images and
// exits with status 0 once all are transferred.
type LazyServer struct {
	cmd   *exec.Cmd
	tail  *tailBuffer
	done  chan struct{}
	err   error
	start time.Time
	once  sync.Once
}

// StartLazyPages starts `criu lazy-pages` on the images in dir, logging into logFile there at
// logLevel, and returns once it listens for the restore (CRIU's --status-fd). The server outlives
// ctx: it must run until every page has been served.
func (c *Client) StartLazyPages(ctx context.Context, dir, logFile string, logLevel int32) (*LazyServer, error) {
	bin, err := c.binary()
	if err != nil {
		return nil, err
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("criu lazy-pages: status pipe: %w", err)
	}
	defer ready.Close()
	s := &LazyServer{tail: &tailBuffer{}, done: make(chan struct{}), start: time.Now()}
	// fd 3 in CRIU: the first of ExtraFiles.
	s.cmd = command(context.Background(), bin, "lazy-pages", "-D", dir, "-o", logFile, "-v"+strconv.Itoa(int(logLevel)), "--status-fd", "3")
	s.cmd.Stdout, s.cmd.Stderr = s.tail, s.tail
	s.cmd.Env = Env()
	s.cmd.ExtraFiles = []*os.File{readyW}
	s.cmd.WaitDelay = waitDelay
	// Its own process group: a signal meant for the daemon's group (a terminal's ^C) must not take
	// the memory of a tree that runs on.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = s.cmd.Start()
	readyW.Close()
	if err != nil {
		return nil, fmt.Errorf("criu lazy-pages: starting %s: %w", bin, err)
	}
	_ = sysinfo.SetPriority(s.cmd.Process.Pid, sysinfo.Normal)
	go s.wait()
	// CRIU writes one byte once its socket listens; the pipe ends without it if CRIU fails first.
	got := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := io.ReadFull(ready, b)
		got <- err
	}()
	select {
	case err = <-got:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.Kill()
		<-s.done
		return nil, fmt.Errorf("criu lazy-pages did not start: %w (see %s in the images directory)", s.Err(), logFile)
	}
	return s, nil
}

// wait reaps the server and records how it ended.
func (s *LazyServer) wait() {
	err := s.cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("criu lazy-pages (PID %d) ended after %s: %w%s", s.cmd.Process.Pid,
			time.Since(s.start).Round(time.Millisecond), err, s.tail.describe())
	}
	s.err = err
	close(s.done)
}

// PID is the server's process ID.
func (s *LazyServer) PID() int { return s.cmd.Process.Pid }

// Started is when the server was started.
func (s *LazyServer) Started() time.Time { return s.start }

// Done is closed once the server has exited: every page was served (Err nil), or it failed.
func (s *LazyServer) Done() <-chan struct{} { return s.done }

// Err is how the server ended once Done is closed: nil when it served every page and exited.
func (s *LazyServer) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Kill stops the server at once; a tree it still serves can no longer run.
func (s *LazyServer) Kill() {
	s.once.Do(func() { _ = s.cmd.Process.Kill() })
}

// userfaultfd's API (linux/userfaultfd.h): what CRIU's lazy-pages server asks of the kernel.
const (
	uffdAPI       = 0xAA
	uffdioAPI     = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdNonCoop   = 1<<1 | 1<<2 | 1<<3 | 1<<6
	uffdNonCoopOn = "fork, remap, remove and unmap events"
)

// CheckLazy says whether lazy restores work here: CRIU's own check of userfaultfd with
// non-cooperative events (LazyFeature), and a userfaultfd opened by this process and asked for
// those events, as CRIU's lazy-pages server will.
func (c *Client) CheckLazy(ctx context.Context) error {
	if err := c.CheckFeature(ctx, LazyFeature); err != nil {
		return err
	}
	return probeUffd()
}

// probeUffd opens a userfaultfd and negotiates the non-cooperative events with the kernel.
func probeUffd() error {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	if errno != 0 {
		return fmt.Errorf("userfaultfd: %w (the kernel needs CONFIG_USERFAULTFD, and the caller CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)", errno)
	}
	defer unix.Close(int(fd))
	api := struct{ api, features, ioctls uint64 }{api: uffdAPI, features: uffdNonCoop}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uffdioAPI, uintptr(unsafe.Pointer(&api))); errno != 0 {
		return fmt.Errorf("userfaultfd: the kernel refuses %s: %w", uffdNonCoopOn, errno)
	}
	return nil
}
