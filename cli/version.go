package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/features"
	"github.com/cedana/cedana/health"
	"github.com/cedana/cedana/version"
)

// VersionCmd is `cedana version`: this binary's version and what it was built with, and the CRIU
// the daemon would use, found as the daemon finds it (no daemon needed).
type VersionCmd struct{}

// versionInfo is what `cedana version` prints; its JSON form with --output json.
type versionInfo struct {
	Version     string   `json:"version"`
	Commit      string   `json:"commit"`
	GoVersion   string   `json:"go_version"`
	CRIUVersion string   `json:"criu_version"`
	CRIUPath    string   `json:"criu_path"`
	CRIUError   string   `json:"criu_error,omitempty"`
	Runtimes    []string `json:"runtimes"`
}

// Run prints the version fields.
func (c *VersionCmd) Run(ctx context.Context, g *Globals, cfg config.Config, env Env) error {
	info := versionInfo{Version: version.Version, Commit: version.BuildCommit(), GoVersion: runtime.Version(), CRIUVersion: "unknown", Runtimes: features.Runtimes()}
	if path, err := criu.FindBinary(cfg.CRIU.BinaryPath); err != nil {
		info.CRIUError = err.Error()
	} else if v, err := (&criu.Client{Binary: path}).Version(ctx); err != nil {
		info.CRIUPath, info.CRIUError = path, err.Error()
	} else {
		info.CRIUPath, info.CRIUVersion = path, health.FormatCRIUVersion(int32(v))
	}
	if g.Output == "json" {
		data, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		_, err = fmt.Fprintln(env.Stdout, string(data))
		return err
	}
	w := newTable(env.Stdout)
	fmt.Fprintf(w, "version\t%s\n", info.Version)
	fmt.Fprintf(w, "commit\t%s\n", info.Commit)
	fmt.Fprintf(w, "go\t%s\n", info.GoVersion)
	criuLine := info.CRIUVersion + " (" + orDash(info.CRIUPath) + ")"
	if info.CRIUError != "" {
		criuLine += ": " + info.CRIUError
	}
	fmt.Fprintf(w, "criu\t%s\n", criuLine)
	fmt.Fprintf(w, "runtimes\t%s\n", strings.Join(info.Runtimes, ", "))
	return w.Flush()
}
