package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cedana/cedana/internal/atomicfile"
)

// Default paths of a node's set-up.
const (
	// DefaultContainerdConfig is where containerd reads its configuration.
	DefaultContainerdConfig = "/etc/containerd/config.toml"
	// DefaultBinDir is where setup puts the WrapperName symlink.
	DefaultBinDir = "/usr/local/bin"
)

// Node is what a node's set-up changes: containerd's configuration file and the directory of the
// WrapperName symlink.
type Node struct {
	// ContainerdConfig is containerd's configuration file.
	ContainerdConfig string
	// BinDir is the directory of the WrapperName symlink.
	BinDir string
	// CopyBinary makes Setup copy the running cedana binary into BinDir as BinaryName and point
	// the symlink at the copy: for a cedana that runs from a container image, whose own binary
	// the host cannot reach.
	CopyBinary bool
}

// BinaryName is the name of the binary Setup copies into BinDir when asked to.
const BinaryName = "cedana"

// Changes says what Setup or Destroy did.
type Changes struct {
	// Config is containerd's configuration file.
	Config string `json:"config"`
	// ConfigChanged tells whether the file was written (or removed); false when it already was as
	// wanted.
	ConfigChanged bool `json:"config_changed"`
	// ConfigRemoved tells whether Destroy removed the file, which Setup had created.
	ConfigRemoved bool `json:"config_removed,omitempty"`
	// Symlink is the WrapperName symlink.
	Symlink string `json:"symlink"`
	// Target is what Setup pointed the symlink at.
	Target string `json:"target,omitempty"`
	// SymlinkChanged tells whether the symlink was created, replaced or removed.
	SymlinkChanged bool `json:"symlink_changed"`
	// BinaryChanged tells whether Setup wrote its copy of the binary (Target), with CopyBinary.
	BinaryChanged bool `json:"binary_changed,omitempty"`
}

// Setup installs the cedana runtime handler on this node: the symlink BinDir/WrapperName to the
// running cedana binary, and the RuntimeHandler runtime in containerd's CRI configuration, whose
// runc is that symlink. Running it again changes nothing; containerd reads the change when it
// restarts (RestartContainerd).
func (n Node) Setup() (Changes, error) {
	ch, err := n.changes()
	if err != nil {
		return ch, err
	}
	current, mode, err := readConfig(ch.Config)
	if err != nil {
		return ch, err
	}
	data, err := AddRuntime(ch.Config, current, ch.Symlink)
	if err != nil {
		return ch, err
	}
	var exe string
	if n.CopyBinary {
		exe = filepath.Join(filepath.Dir(ch.Symlink), BinaryName)
		if ch.BinaryChanged, err = copySelf(exe); err != nil {
			return ch, err
		}
	} else {
		if exe, err = os.Executable(); err == nil {
			exe, err = filepath.EvalSymlinks(exe)
		}
		if err != nil {
			return ch, fmt.Errorf("find the running cedana binary for the %s symlink: %w", ch.Symlink, err)
		}
	}
	ch.Target = exe
	if ch.SymlinkChanged, err = ensureSymlink(ch.Symlink, exe); err != nil {
		return ch, err
	}
	if !current.Exists || !bytes.Equal(data, current.Data) {
		if err := writeAtomic(ch.Config, data, mode); err != nil {
			return ch, err
		}
		ch.ConfigChanged = true
	}
	return ch, nil
}

// Destroy undoes Setup: containerd's configuration becomes, byte for byte, what it was before
// (removed if Setup created it), and the symlink goes. Running it again changes nothing.
func (n Node) Destroy() (Changes, error) {
	ch, err := n.changes()
	if err != nil {
		return ch, err
	}
	current, mode, err := readConfig(ch.Config)
	if err != nil {
		return ch, err
	}
	orig, err := RemoveRuntime(ch.Config, current)
	if err != nil {
		return ch, err
	}
	switch {
	case current.Exists && !orig.Exists:
		if err := os.Remove(ch.Config); err != nil {
			return ch, fmt.Errorf("remove containerd's configuration %s, which cedana k8s setup created: %w", ch.Config, err)
		}
		ch.ConfigChanged, ch.ConfigRemoved = true, true
	case current.Exists && !bytes.Equal(orig.Data, current.Data):
		if err := writeAtomic(ch.Config, orig.Data, mode); err != nil {
			return ch, err
		}
		ch.ConfigChanged = true
	}
	ch.SymlinkChanged, err = removeSymlink(ch.Symlink)
	return ch, err
}

// changes checks n's paths and returns the Changes that name them.
func (n Node) changes() (Changes, error) {
	if n.ContainerdConfig == "" || n.BinDir == "" {
		return Changes{}, errors.New("the containerd configuration file and the bin directory are needed: pass --containerd-config and --bin-dir")
	}
	config, err := filepath.Abs(n.ContainerdConfig)
	if err != nil {
		return Changes{}, fmt.Errorf("containerd configuration path %s: %w", n.ContainerdConfig, err)
	}
	binDir, err := filepath.Abs(n.BinDir)
	if err != nil {
		return Changes{}, fmt.Errorf("bin directory %s: %w", n.BinDir, err)
	}
	return Changes{Config: config, Symlink: filepath.Join(binDir, WrapperName)}, nil
}

// readConfig reads containerd's configuration file and its mode (0644 for a missing file, whose
// directory must exist).
func readConfig(path string) (ConfigFile, fs.FileMode, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		info, err := os.Stat(path)
		if err != nil {
			return ConfigFile{}, 0, fmt.Errorf("containerd's configuration %s: %w", path, err)
		}
		return ConfigFile{Data: data, Exists: true}, info.Mode().Perm(), nil
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			return ConfigFile{}, 0, fmt.Errorf("containerd's configuration directory %s: %w: is containerd installed? Pass its configuration file with --containerd-config", filepath.Dir(path), err)
		}
		return ConfigFile{}, 0o644, nil
	default:
		return ConfigFile{}, 0, fmt.Errorf("read containerd's configuration %s: %w", path, err)
	}
}

// writeAtomic replaces containerd's configuration path with data and mode, keeping its owner
// (atomicfile.Write).
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("write containerd's configuration %s: %w", path, err)
	}
	return nil
}

// ensureSymlink makes link a symlink to target, replacing a symlink that points elsewhere (an
// older cedana binary) atomically, and reports whether it changed anything. Anything else at
// link is refused.
func ensureSymlink(link, target string) (bool, error) {
	info, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Symlink(target, link); err != nil {
			return false, fmt.Errorf("create the runtime handler's symlink %s: %w; pass a writable --bin-dir", link, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("runtime handler's symlink %s: %w", link, err)
	case info.Mode()&fs.ModeSymlink == 0:
		return false, fmt.Errorf("%s exists and is not a symlink cedana k8s setup made: remove it, or pass another --bin-dir", link)
	}
	if have, err := os.Readlink(link); err == nil && have == target {
		return false, nil
	}
	tmp := link + ".cedana-new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return false, fmt.Errorf("replace the runtime handler's symlink %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("replace the runtime handler's symlink %s: %w", link, err)
	}
	return true, nil
}

// removeSymlink removes the symlink link, if there is one, and reports whether it did.
func removeSymlink(link string) (bool, error) {
	info, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("runtime handler's symlink %s: %w", link, err)
	case info.Mode()&fs.ModeSymlink == 0:
		return false, fmt.Errorf("%s is not a symlink cedana k8s setup made, so it was left alone: remove it yourself if it is not needed", link)
	}
	if err := os.Remove(link); err != nil {
		return false, fmt.Errorf("remove the runtime handler's symlink %s: %w", link, err)
	}
	return true, nil
}

// copySelf copies the running binary (through /proc/self/exe, which works from any mount
// namespace) to dst, atomically, unless dst already holds the same bytes; it reports whether it
// wrote dst.
func copySelf(dst string) (bool, error) {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return false, fmt.Errorf("read the running cedana binary: %w", err)
	}
	if have, err := os.ReadFile(dst); err == nil && bytes.Equal(have, self) {
		return false, nil
	}
	tmp := dst + ".cedana-new"
	if err := os.WriteFile(tmp, self, 0o755); err != nil {
		return false, fmt.Errorf("copy cedana to %s: %w; pass a writable --bin-dir", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("copy cedana to %s: %w", dst, err)
	}
	return true, nil
}

// RestartContainerd restarts containerd with systemd, so that it reads its changed configuration.
// Without systemd it says what to do instead.
func RestartContainerd(ctx context.Context) error {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return errors.New("systemd does not run this machine, so --restart cannot restart containerd: restart it yourself as it was started")
	}
	out, err := exec.CommandContext(ctx, "systemctl", "restart", "containerd").CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl restart containerd: %w: %s; check `systemctl status containerd` and `journalctl -u containerd`", err, bytes.TrimSpace(out))
	}
	return nil
}
