// Package containerd is cedana's runtime for containerd containers (Kubernetes' among them, in
// the k8s.io namespace): `cedana dump containerd <id>`, `cedana restore containerd`, `cedana run
// containerd` and `cedana manage containerd`.
//
// Containers run by containerd's runc shim are runc containers under runc's root
// /run/containerd/runc/<namespace>: the dump reuses the runc container dump of
// runtimes/internal/runcshared (which registers no runtime, so this one comes without runc's) and
// the daemon's CRIU chain, adding what only containerd knows (its spec, image, snapshot and, with
// --rootfs, the writable layer's changes). The restore creates a real containerd container and
// task from the checkpoint (the shim runs `runc restore` on the images), so that `ctr task ls`,
// `ctr task kill` and `ctr container rm` work on it.
package containerd

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// Name is the runtime's name, the request type it serves.
const Name = features.Containerd

const (
	// DefaultNamespace is containerd's default namespace.
	DefaultNamespace = "default"
	// DefaultAddress is containerd's default socket.
	DefaultAddress = "/run/containerd/containerd.sock"
	// RuncShim is the only containerd runtime whose containers cedana can checkpoint.
	RuncShim = "io.containerd.runc.v2"
	// RuncRoot is where containerd's runc shim keeps runc's state, one directory per namespace.
	RuncRoot = "/run/containerd/runc"
)

// Target are the flags that find a containerd.
type Target struct {
	Namespace string `short:"n" help:"containerd namespace (k8s.io for Kubernetes' containers)." default:"default" env:"CONTAINERD_NAMESPACE" placeholder:"NS"`
	Address   string `name:"containerd-address" help:"containerd's socket (--address is the cedana daemon's)." default:"/run/containerd/containerd.sock" env:"CONTAINERD_ADDRESS" placeholder:"SOCKET"`
}

// DumpCmd is `cedana dump containerd <id>`.
type DumpCmd struct {
	ID         string `arg:"" name:"id" help:"ID of the container with a running task to checkpoint."`
	Rootfs     bool   `help:"Also store the container's writable-layer changes, for a restore onto a fresh snapshot."`
	Image      string `help:"Also commit the container's writable layer as this image in containerd (for restore --image)." placeholder:"REF"`
	RootfsOnly bool   `name:"rootfs-only" help:"Only commit the writable layer (--image): no CRIU dump, the container runs on, no job's checkpoint."`
	Target     `embed:""`
}

// FillDump implements features.DumpCommand. --image and --rootfs-only go into the request's
// runtime-neutral fields, as for `dump job --image`: Commit takes both into the details.
func (c *DumpCmd) FillDump(req *daemonv1.DumpRequest) error {
	req.Image, req.RootfsOnly = c.Image, c.RootfsOnly
	req.Details = &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{
		Id: c.ID, Namespace: c.Namespace, Address: c.Address, Rootfs: c.Rootfs,
	}}
	return nil
}

// Commit implements features.Committer: the request's image becomes the container's commit_image
// and rootfs_only its rootfs_only, with the task left running (no CRIU dump stops it).
func Commit(req *daemonv1.DumpRequest) error {
	if req.Details == nil {
		req.Details = &daemonv1.Details{}
	}
	d := req.Details.Containerd
	if d == nil {
		d = &daemonv1.ContainerdDetails{}
		req.Details.Containerd = d
	}
	if req.RootfsOnly && d.Rootfs {
		return errs.Invalid("--rootfs-only makes no checkpoint to store --rootfs in: drop --rootfs")
	}
	d.CommitImage, d.RootfsOnly = req.Image, req.RootfsOnly
	if req.RootfsOnly {
		if req.Criu == nil {
			req.Criu = &daemonv1.CriuOptions{}
		}
		req.Criu.LeaveRunning = true // the container is not checkpointed: it runs on
	}
	return nil
}

// PodTarget are the flags of `cedana dump pod` that find the containerd whose CRI runs the pod.
type PodTarget struct {
	Address      string `name:"containerd-address" help:"containerd's socket (--address is the cedana daemon's)." default:"/run/containerd/containerd.sock" env:"CONTAINERD_ADDRESS" placeholder:"SOCKET"`
	CtrNamespace string `name:"containerd-namespace" help:"containerd namespace of the CRI (Kubernetes' containers)." default:"k8s.io" placeholder:"NS"`
}

// FillDumpPod implements features.PodDumpCommand.
func (t *PodTarget) FillDumpPod(req *daemonv1.DumpPodRequest) error {
	req.Address, req.ContainerdNamespace = t.Address, t.CtrNamespace
	return nil
}

// RestoreCmd is `cedana restore containerd --id <id> --path <checkpoint>`.
type RestoreCmd struct {
	ID        string `name:"id" help:"ID of the restored container (default: the dumped container's, which must have no task)." placeholder:"ID"`
	Image     string `help:"Image for the restored container's root filesystem (default: the dumped container's); it must be in containerd already." placeholder:"REF"`
	Namespace string `short:"n" help:"containerd namespace (default: the dumped container's)." env:"CONTAINERD_NAMESPACE" placeholder:"NS"`
	Address   string `name:"containerd-address" help:"containerd's socket (default: the dumped container's containerd)." env:"CONTAINERD_ADDRESS" placeholder:"SOCKET"`
}

// FillRestore implements features.RestoreCommand.
func (c *RestoreCmd) FillRestore(req *daemonv1.RestoreRequest) error {
	req.Details = &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: c.ID, Namespace: c.Namespace, Address: c.Address, Image: c.Image}}
	return nil
}

// RunCmd is `cedana run containerd [--id <id>] <image> [cmd...]`.
type RunCmd struct {
	Image       string   `arg:"" help:"Image to run (it must be in containerd already: no registry is pulled from)."`
	Args        []string `arg:"" optional:"" passthrough:"" help:"Command to run instead of the image's."`
	ID          string   `name:"id" help:"ID of the new container (default: the job's ID)." placeholder:"ID"`
	Env         []string `short:"e" help:"Environment variable for the container, added to the image's (repeatable)." placeholder:"K=V"`
	Snapshotter string   `help:"Snapshotter of the container's root filesystem (default: containerd's)." placeholder:"NAME"`
	Target      `embed:""`
}

// FillRun implements features.RunCommand.
func (c *RunCmd) FillRun(req *daemonv1.RunRequest) error {
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("--env %q is not K=V", kv)
		}
	}
	req.Containerd = &daemonv1.ContainerdDetails{
		Id: c.ID, Namespace: c.Namespace, Address: c.Address, Image: c.Image, Args: c.Args,
		Env: c.Env, Snapshotter: c.Snapshotter,
	}
	return nil
}

// ManageCmd is `cedana manage containerd <id>`.
type ManageCmd struct {
	ID     string `arg:"" name:"id" help:"ID of the container with a running task to adopt."`
	Target `embed:""`
}

// FillManage implements features.ManageCommand.
func (c *ManageCmd) FillManage(req *daemonv1.ManageRequest) error {
	req.Details = &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: c.ID, Namespace: c.Namespace, Address: c.Address}}
	return nil
}

var (
	_ features.DumpCommand    = (*DumpCmd)(nil)
	_ features.RestoreCommand = (*RestoreCmd)(nil)
	_ features.RunCommand     = (*RunCmd)(nil)
	_ features.ManageCommand  = (*ManageCmd)(nil)
	_ features.PodDumpCommand = (*PodTarget)(nil)
)

// withDefaults fills the namespace and address of d.
func withDefaults(d *daemonv1.ContainerdDetails) *daemonv1.ContainerdDetails {
	if d == nil {
		d = &daemonv1.ContainerdDetails{}
	}
	d.Namespace = cmp.Or(d.Namespace, DefaultNamespace)
	d.Address = cmp.Or(d.Address, DefaultAddress)
	return d
}

func init() {
	features.Register(features.Runtime{
		Name:     Name,
		BuildTag: "runtimes.containerd",
		Dump: features.Dump{
			Command:    features.Subcommand(Name, "Checkpoint a containerd container's running task.", &DumpCmd{}),
			Middleware: DumpMiddleware,
			Handler:    dumpHandler,
			Commit:     Commit,
		},
		Restore: features.Restore{
			Command:    features.Subcommand(Name, "Restore a checkpoint (--path) as a containerd container and task.", &RestoreCmd{}),
			Middleware: RestoreMiddleware,
			Handler:    RestoreTask,
			NotLazy:    "containerd's runc shim passes runc restore only the image path, work path and parent checkpoint, so it cannot ask runc for --lazy-pages",
		},
		Health: Check,
		Run: features.Run{
			Command: features.Subcommand(Name, "Run an image as a containerd container, as a managed job.", &RunCmd{}),
			Handler: Run,
		},
		Manage: features.Manage{
			Command: features.Subcommand(Name, "Adopt a containerd container's running task as a managed job.", &ManageCmd{}),
			Handler: Manage,
		},
		PodDump:    features.PodDump{Flags: &PodTarget{}, Handler: DumpPod},
		PodRestore: PreparePodRestore,
		Freeze: features.Freeze{
			Freeze:   features.Subcommand(Name, "Pause a containerd container's task (as ctr task pause).", &FreezeCmd{}),
			Unfreeze: features.Subcommand(Name, "Resume a paused containerd container's task.", &FreezeCmd{}),
			Handler:  Freeze,
		},
		Query: features.Query{
			Command: features.Subcommand(Name, "Describe containerd containers by their IDs.", &QueryCmd{}),
			Handler: Query,
		},
	})
}
