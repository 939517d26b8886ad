package criu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Well-known install locations of criu, tried in this order after $PATH.
const (
	// SystemBinary is where hack/install-criu.sh links a usable criu.
	SystemBinary = "/usr/local/sbin/criu"
	// PrivateBinary is the criu that hack/install-criu.sh installs in its
	// private prefix.
	PrivateBinary = "/opt/cedana/criu/bin/criu"
)

// ErrBinaryNotFound is wrapped by FindBinary's error when no criu binary is
// found anywhere.
var ErrBinaryNotFound = errors.New("criu binary not found")

// FindBinary returns the criu binary to use. A non-empty configured path is
// returned as is if it is an executable file and is an error otherwise.
// Without one, it tries `criu` in $PATH, then SystemBinary, then
// PrivateBinary.
func FindBinary(configured string) (string, error) {
	if configured != "" {
		if err := checkExecutable(configured); err != nil {
			return "", fmt.Errorf("configured criu binary (criu.binary_path or CEDANA_CRIU_BINARY_PATH) is unusable: %w; "+
				"point it at CRIU 4.1 or newer, or unset it to use the one `just deps` installs", err)
		}
		return configured, nil
	}
	if path, err := exec.LookPath("criu"); err == nil {
		return path, nil
	}
	for _, path := range []string{SystemBinary, PrivateBinary} {
		if checkExecutable(path) == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%w in $PATH, %s or %s: run `just deps` (or hack/install-criu.sh) "+
		"or set CEDANA_CRIU_BINARY_PATH", ErrBinaryNotFound, SystemBinary, PrivateBinary)
}

// checkExecutable reports why path is not an executable regular file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// command runs criu binary bin with args. A criu of a private prefix (<prefix>/bin/criu beside
// <prefix>/lib) reached through /proc, as the daemon reaches its image's from the host's mount
// namespace (internal/hostns), runs through the prefix's own dynamic loader: its interpreter is an
// absolute path, which names a file of the other mount namespace.
func command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if strings.HasPrefix(bin, "/proc/") {
		lib := filepath.Join(filepath.Dir(filepath.Dir(bin)), "lib")
		loader := filepath.Join(lib, "ld-linux-x86-64.so.2")
		if checkExecutable(loader) == nil {
			// #nosec G204 -- the binary is configured by the operator.
			return exec.CommandContext(ctx, loader, append([]string{"--library-path", lib, bin}, args...)...)
		}
	}
	// #nosec G204 -- the binary is configured by the operator.
	return exec.CommandContext(ctx, bin, args...)
}
