package features

import (
	"context"
	"fmt"
	"strings"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// PodDumper checkpoints the app containers of a Kubernetes pod that the runtime runs into one pod
// checkpoint at steps.Location: it finds the pod's containers, holds them frozen together, dumps
// each through steps.Dump, has steps.Commit write the manifest, and then resumes the containers
// (--leave-running) or ends them. It fills the response's manifest (without its entries' common
// fields, which Commit completes), the containers' dumps and Stats.Frozen. On failure every
// container keeps running, and the daemon removes the entries that were written.
type PodDumper func(ctx context.Context, req *daemonv1.DumpPodRequest, steps PodDumpSteps) (*daemonv1.DumpPodResponse, error)

// PodDumpSteps are what the daemon lends a PodDumper: where the pod checkpoint goes, and its own
// dump path, so that every container's dump is a normal one (chain, journal, catalog, cleanup).
type PodDumpSteps struct {
	// Location is the pod checkpoint's location: a directory or an s3:// URL. Each container's
	// dump has it as its Dir and the container's name as its Name.
	Location string
	// Dump dumps one container as the daemon's Dump does, and records it in the catalog.
	Dump func(ctx context.Context, req *daemonv1.DumpRequest) (*daemonv1.DumpResponse, error)
	// Commit writes the manifest resp.Manifest (pod.json), which marks the pod checkpoint
	// complete; it is called once every container is dumped, before any is ended.
	Commit func(ctx context.Context, resp *daemonv1.DumpPodResponse) error
}

// PodDump is a runtime's checkpoint of the Kubernetes pods whose containers it runs, `cedana
// dump pod`: the flags that say where the runtime finds pods, and the daemon's handler.
type PodDump struct {
	// Flags are embedded into `cedana dump pod` (kong.Plugins): a pointer to a struct of flags,
	// which implements PodDumpCommand.
	Flags PodDumpCommand
	// Handler dumps the pod in the daemon.
	Handler PodDumper
}

// PodDumpCommand is implemented by a runtime's flags of `cedana dump pod`: it puts them into the
// request the CLI sends.
type PodDumpCommand interface {
	FillDumpPod(req *daemonv1.DumpPodRequest) error
}

var (
	// PodDumpFlags are each runtime's flags of `cedana dump pod` (where it finds pods).
	PodDumpFlags = New[PodDumpCommand]("pod-dump-flags", "flags of `cedana dump pod` that say where the runtime finds pods")
	// PodDumpHandler checkpoints a Kubernetes pod's containers, frozen together.
	PodDumpHandler = New[PodDumper]("pod-dump-handler", "`cedana dump pod`: checkpoint a Kubernetes pod's containers, frozen together")
)

// OnlyPodDumper returns the one runtime of this binary that dumps pods, and its PodDumper. A
// binary without one answers with an error wrapping ErrUnavailable that says how to get one.
func OnlyPodDumper() (string, PodDumper, error) {
	names := PodDumpHandler.Names()
	if len(names) == 0 {
		return "", nil, fmt.Errorf("this cedana binary has no runtime that checkpoints pods (%s): "+
			"rebuild without -tags custom, or with the tag of a runtime that provides it (see `cedana features`): %w",
			PodDumpHandler.Name(), ErrUnavailable)
	}
	if len(names) > 1 {
		return "", nil, fmt.Errorf("runtimes %s all checkpoint pods: cedana cannot tell which runs the pod", strings.Join(names, ", "))
	}
	impl, err := PodDumpHandler.Get(names[0])
	return names[0], impl, err
}
