// Package version holds the build's version and commit, stamped at link time with
// -ldflags "-X github.com/cedana/cedana/version.Version=... -X github.com/cedana/cedana/version.Commit=...".
package version

// Version is cedana's version; "dev" when not stamped.
var Version = "dev"

// Commit is the git commit cedana was built from; empty when not stamped (then the VCS revision
// Go records, if any, stands in).
var Commit = ""
