package criu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
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
