// Package runcshared is what cedana's runtimes for runc containers share: reading a container's
// state with libcontainer, the CRIU options runc itself would use, the dump adapter of a runc
// container and running the host's runc binary. Both the runc runtime and the containerd runtime
// (whose runc shim runs runc containers) build on it.
//
// It registers nothing: importing it compiles no runtime into a binary, so a build holds exactly
// the runtimes its tags name.
package runcshared
