// Package hostns moves a daemon that runs in a container into the host's mount namespace.
//
// CRIU must run in the mount namespace of the processes it dumps and restores: from any other it
// would try to checkpoint the whole mount namespace (the host's, with every mount), and its
// restore would make a new one. A privileged container that shares the host's PID namespace
// reaches the host's through /proc/1/ns/mnt. The daemon re-executes itself there and keeps a
// descriptor of its image's root, through which it still runs the image's CRIU.
package hostns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// rootFDEnv carries the descriptor of the image's root across the re-execution.
const rootFDEnv = "CEDANA_INTERNAL_IMAGE_ROOT_FD"

// Enter re-executes the process in the mount namespace nsPath (such as /proc/1/ns/mnt) unless it
// is already there; it does not return when it re-executes. After the re-execution it returns
// the image's root, a path that works in the new namespace (/proc/<pid>/fd/<fd>); it returns ""
// when the process was in nsPath's namespace from the start. env is added to the re-executed
// process's environment; a value may name the image's root as "{root}" (as in
// CEDANA_CRIU_BINARY_PATH={root}/opt/cedana/criu/bin/criu).
func Enter(nsPath string, env map[string]string) (string, error) {
	if v, ok := os.LookupEnv(rootFDEnv); ok {
		_ = os.Unsetenv(rootFDEnv)
		fd, err := strconv.Atoi(v)
		if err != nil {
			return "", fmt.Errorf("%s=%q is not a descriptor: %w", rootFDEnv, v, err)
		}
		unix.CloseOnExec(fd) // the daemon's children (workloads, CRIU) must not inherit it
		return imageRoot(fd)
	}
	same, err := sameNamespace(nsPath)
	if err != nil || same {
		return "", err
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the cedana binary to re-execute in the host's mount namespace: %w", err)
	}
	nsFD, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open the host's mount namespace %s: %w (the container needs hostPID and privileges)", nsPath, err)
	}
	defer unix.Close(nsFD)
	// Not close-on-exec: the re-executed daemon finds its image through it.
	rootFD, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", fmt.Errorf("open the image's root: %w", err)
	}
	// setns into a mount namespace needs a thread that shares its filesystem attributes with no
	// other: this one, locked and never unlocked, which then executes the binary again.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return "", fmt.Errorf("unshare the filesystem attributes: %w", err)
	}
	if err := unix.Setns(nsFD, unix.CLONE_NEWNS); err != nil {
		return "", fmt.Errorf("enter the host's mount namespace %s: %w (the container must be privileged)", nsPath, err)
	}
	root, err := imageRoot(rootFD)
	if err != nil {
		return "", err
	}
	environ := append(os.Environ(), rootFDEnv+"="+strconv.Itoa(rootFD))
	for k, v := range env {
		if _, set := os.LookupEnv(k); !set {
			environ = append(environ, k+"="+expand(v, root))
		}
	}
	argv0 := filepath.Join(root, exe)
	if err := unix.Exec(argv0, os.Args, environ); err != nil {
		return "", fmt.Errorf("re-execute %s in the host's mount namespace: %w", argv0, err)
	}
	return "", nil
}

// imageRoot is the path of descriptor fd of this process, as it resolves in the current mount
// namespace's /proc (the host's, in which this process's PID may differ from getpid's).
func imageRoot(fd int) (string, error) {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return "", fmt.Errorf("find this process in the host's /proc: %w", err)
	}
	return fmt.Sprintf("/proc/%s/fd/%d", self, fd), nil
}

// expand replaces "{root}" at the start of v with root.
func expand(v, root string) string {
	const marker = "{root}"
	if len(v) >= len(marker) && v[:len(marker)] == marker {
		return root + v[len(marker):]
	}
	return v
}

// sameNamespace reports whether this process is in the mount namespace at nsPath.
func sameNamespace(nsPath string) (bool, error) {
	var target, self unix.Stat_t
	if err := unix.Stat(nsPath, &target); err != nil {
		return false, fmt.Errorf("stat the host's mount namespace %s: %w (the container needs hostPID)", nsPath, err)
	}
	if err := unix.Stat("/proc/self/ns/mnt", &self); err != nil {
		return false, fmt.Errorf("stat this process's mount namespace: %w", err)
	}
	return target.Dev == self.Dev && target.Ino == self.Ino, nil
}
