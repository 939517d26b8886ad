package cli

import (
	"os"
	"path/filepath"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/internal/hostns"
)

// enterHostMountNS re-executes the daemon in the mount namespace nsPath (see internal/hostns),
// taking along what it must still find in its image: its CRIU (unless one is configured) and its
// config file. It returns the image's root once there, "" when the daemon was there already.
func enterHostMountNS(nsPath string, loaded config.Loaded) (string, error) {
	env := map[string]string{}
	if loaded.Config.CRIU.BinaryPath == "" {
		if _, err := os.Stat(criu.PrivateBinary); err == nil {
			env["CEDANA_CRIU_BINARY_PATH"] = "{root}" + criu.PrivateBinary
		}
	}
	if _, err := os.Stat(loaded.File); err == nil {
		if abs, err := filepath.Abs(filepath.Dir(loaded.File)); err == nil {
			env["CEDANA_CONFIG_DIR"] = "{root}" + abs
		}
	}
	return hostns.Enter(nsPath, env)
}
