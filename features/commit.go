package features

import daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"

// Committer takes a dump request's runtime-neutral commit fields (image, rootfs_only: `dump
// --image REF [--rootfs-only]`, `dump job J --image REF`) into the runtime's own details, and
// refuses combinations the runtime cannot do. It runs before anything of the workload is touched.
type Committer func(req *daemonv1.DumpRequest) error

// DumpCommit is each runtime's Committer: the runtimes whose dumps can commit the workload's
// writable layer as an image. A dump that asks for an image of another runtime is refused.
var DumpCommit = New[Committer]("dump-commit", "`dump --image REF [--rootfs-only]`: commit the writable layer as an image")

// RestoreStream lists the runtimes whose restore handler takes an archive's images as a stream
// (adapters.RestoreStream, criu restore --stream); for the others the chain unpacks them first.
var RestoreStream = New[struct{}]("restore-stream", "restore straight from an archive or s3:// object (criu restore --stream)")

// Migrate lists the runtimes whose workloads `cedana migrate` moves to another daemon: the dump
// leaves the tree stopped (CRIU's leave-stopped) and a SIGCONT to its processes resumes it where
// the destination fails, with nothing else of the runtime's to undo.
var Migrate = New[struct{}]("migrate", "`migrate`: move a running workload to another daemon, its checkpoint streamed")

// RestoreLazy lists the runtimes whose restore handler restores lazily (RestoreRequest.lazy):
// their memory served on demand by CRIU's lazy-pages server. A lazy restore of another is refused.
var RestoreLazy = New[struct{}]("restore-lazy", "`restore --lazy`: run at once, memory served on demand (criu lazy-pages)")

// restoreNotLazy is why a runtime cannot restore lazily (Restore.NotLazy), for NotLazy; not a
// capability, so not in the feature table.
var restoreNotLazy = New[string]("restore-not-lazy", "why `restore --lazy` cannot work through the runtime")

// NotLazy is why runtime cannot restore lazily, as its declaration says; "" if it does not say.
func NotLazy(runtime string) string {
	why, _ := restoreNotLazy.Lookup(runtime)
	return why
}
