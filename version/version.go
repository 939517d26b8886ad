// Package version holds the build's version, stamped at link time with
// -ldflags "-X github.com/cedana/cedana/version.Version=...".
package version

// Version is cedana's version; "dev" when not stamped.
var Version = "dev"
