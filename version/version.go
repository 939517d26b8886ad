// Package version holds the build's version and commit, stamped at link time with
// -ldflags "-X github.com/cedana/cedana/version.Version=... -X github.com/cedana/cedana/version.Commit=...".
package version

import "runtime/debug"

// Version is cedana's version; "dev" when not stamped.
var Version = "dev"

// Commit is the git commit cedana was built from; empty when not stamped (then the VCS revision
// Go records, if any, stands in).
var Commit = ""

// BuildCommit is the commit stamped at link time, else the VCS revision Go recorded ("-dirty" when
// the tree had changes), else "unknown" (a plain go build with -buildvcs=false, or go test).
func BuildCommit() string {
	if Commit != "" {
		return Commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	commit, dirty := "unknown", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && commit != "unknown" {
		commit += "-dirty"
	}
	return commit
}
