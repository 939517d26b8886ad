package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/alecthomas/kong"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// PodCmd is `cedana dump pod <pod>`: every app container of a Kubernetes pod, held frozen
// together, into one pod checkpoint. The runtimes that run pods add the flags that say where
// they find them (kong.Plugins).
type PodCmd struct {
	Pod        string   `arg:"" name:"pod" help:"The pod's name, as kubectl get pods shows it."`
	Namespace  string   `short:"n" help:"The pod's Kubernetes namespace." default:"default" placeholder:"NS"`
	Containers []string `name:"container" help:"Only this container of the pod, by name (repeatable; default: all)." placeholder:"NAME"`

	kong.Plugins
}

// podDumpFlags lists, for kong.Plugins, each runtime's flags of `cedana dump pod`.
func podDumpFlags() kong.Plugins {
	var plugins kong.Plugins
	for _, name := range features.PodDumpFlags.Names() {
		flags, _ := features.PodDumpFlags.Lookup(name)
		plugins = append(plugins, flags)
	}
	return plugins
}

// runPod sends the pod dump built from the common dump flags and the pod's, and prints where
// the pod checkpoint is.
func (c *DumpCmd) runPod(ctx context.Context, pod *PodCmd, g *Globals, cfg config.Config, env Env, client daemonv1connect.DaemonServiceClient) error {
	dir, err := localOrRemote(c.Dir)
	if err != nil {
		return err
	}
	req := &daemonv1.DumpPodRequest{
		Pod:         pod.Pod,
		Namespace:   pod.Namespace,
		Containers:  pod.Containers,
		Dir:         dir,
		Name:        c.Name,
		Compression: c.Compression,
		Criu:        c.criuOptions(cfg),
	}
	for _, name := range features.PodDumpFlags.Names() {
		flags, _ := features.PodDumpFlags.Lookup(name)
		if err := flags.FillDumpPod(req); err != nil {
			return err
		}
	}
	resp, err := callWatched(ctx, g, env, client, func(id string) (*daemonv1.DumpPodResponse, error) {
		req.OperationId = id
		return client.DumpPod(ctx, req)
	})
	if err != nil {
		return err
	}
	return printAs(env, g, resp, func(w io.Writer, resp *daemonv1.DumpPodResponse) error {
		fmt.Fprintf(w, "Dumped pod %s/%s to %s\n", resp.Manifest.GetNamespace(), resp.Manifest.GetName(), resp.Path)
		if !c.Stats {
			return nil
		}
		printStats(w, resp.Stats)
		for i, ctr := range resp.Manifest.GetContainers() {
			fmt.Fprintf(w, "%s (%s): ", ctr.Name, ctr.Entry)
			if i < len(resp.Containers) {
				printStats(w, resp.Containers[i].Stats)
			}
		}
		return nil
	})
}
