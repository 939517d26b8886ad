package features

import (
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/store"
)

// Runtime names known to cedana, whether or not this binary has them.
const (
	Process    = "process"
	Runc       = "runc"
	Containerd = "containerd"
)

// KnownRuntimes lists every runtime cedana has, in the order help text shows them.
var KnownRuntimes = []string{Process, Runc, Containerd}

// Command is a pointer to a struct that holds one kong subcommand as its one field, e.g.
//
//	&struct{ Process ProcessDump `cmd:"" help:"..."` }{}
//
// as Subcommand builds it. The CLI embeds it into its verb's command with kong.Plugins.
type Command = any

// Subcommand is the Command that holds leaf, a pointer to a kong command struct, as the subcommand
// name with help text help.
func Subcommand(name, help string, leaf any) Command {
	lv := reflect.ValueOf(leaf)
	if lv.Kind() != reflect.Pointer || lv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("features: subcommand %s: %T is not a pointer to a struct", name, leaf))
	}
	field := reflect.StructField{
		Name: "Cmd",
		Type: lv.Elem().Type(),
		Tag:  reflect.StructTag(`cmd:"" name:` + strconv.Quote(name) + ` help:` + strconv.Quote(help)),
	}
	v := reflect.New(reflect.StructOf([]reflect.StructField{field}))
	v.Elem().Field(0).Set(lv.Elem())
	return v.Interface()
}

// Checker reports whether a runtime can be used on this machine now; the string says what it found.
type Checker func(ctx context.Context) (detail string, err error)

// The table of features. Register fills it from each runtime's declaration.
var (
	// DumpCmd is each runtime's `cedana dump <runtime>` subcommand; its command implements DumpCommand.
	DumpCmd = New[Command]("dump-cmd", "`cedana dump <runtime>` subcommand")
	// RestoreCmd is each runtime's `cedana restore <runtime>` subcommand; its command implements RestoreCommand.
	RestoreCmd = New[Command]("restore-cmd", "`cedana restore <runtime>` subcommand")

	// RunCmd is each runtime's `cedana run <runtime>` subcommand; its command implements RunCommand.
	RunCmd = New[Command]("run-cmd", "`cedana run <runtime>` subcommand")
	// ManageCmd is each runtime's `cedana manage <runtime>` subcommand; its command implements ManageCommand.
	ManageCmd = New[Command]("manage-cmd", "`cedana manage <runtime>` subcommand")

	// RunHandler starts a workload of the runtime as a managed job.
	RunHandler = New[JobStarter]("run-handler", "start a workload as a managed job")
	// ManageHandler adopts a running workload of the runtime as a managed job.
	ManageHandler = New[JobAdopter]("manage-handler", "adopt a running workload as a managed job")

	// DumpMiddleware runs inside the daemon's dump chain, after the common adapters and before CRIU.
	DumpMiddleware = New[adapters.Middleware[adapters.DumpHandler]]("dump-middleware", "runtime adapters of a dump (inspect the workload, set CRIU options)")
	// DumpHandler performs the dump at the end of the chain.
	DumpHandler = New[adapters.DumpHandler]("dump-handler", "the dump itself (usually CRIU)")
	// RestoreMiddleware runs inside the daemon's restore chain, before CRIU.
	RestoreMiddleware = New[adapters.Middleware[adapters.RestoreHandler]]("restore-middleware", "runtime adapters of a restore (prepare the workload's environment)")
	// RestoreHandler performs the restore at the end of the chain.
	RestoreHandler = New[adapters.RestoreHandler]("restore-handler", "the restore itself (usually CRIU)")

	// HealthCheck says whether the runtime is usable now.
	HealthCheck = New[Checker]("health-check", "whether the runtime can be used on this machine now")

	// NoServer runs a runtime's workload as the CLI's own child: `--no-server`.
	NoServer = New[InProcessRunner]("no-server", "`--no-server`: run or restore the workload as the CLI's child, without a daemon")
	// JobDetails completes a job's recorded details for a dump of the job.
	JobDetails = New[JobDetailsFunc]("job-details", "complete a job's recorded details with its current process (dump job)")

	// PodRestore readies a container's entry of a pod checkpoint for the runtime handler's restore.
	PodRestore = New[PodPreparer]("pod-restore", "ready a pod checkpoint's container for its restore by the Kubernetes runtime handler")
)

// Described is what the features table shows of any feature.
type Described interface {
	Name() string
	Description() string
	Names() []string
	IsAvailable(runtime string) bool
}

// Table lists every feature, in the order `cedana features` prints them.
func Table() []Described {
	return []Described{
		DumpCmd, RestoreCmd, RunCmd, ManageCmd, RunHandler, ManageHandler, DumpMiddleware, DumpHandler, RestoreMiddleware, RestoreHandler, HealthCheck,
		NoServer, JobDetails, PodDumpFlags, PodDumpHandler, PodRestore,
		FreezeCmd, UnfreezeCmd, FreezeHandler, QueryCmd, QueryHandler, DumpCommit, RestoreStream, RestoreLazy, Migrate,
	}
}

// DumpCommand is implemented by the kong command a runtime registers in DumpCmd: it puts the
// runtime's arguments into the request the CLI sends.
type DumpCommand interface {
	FillDump(req *daemonv1.DumpRequest) error
}

// RestoreCommand is implemented by the kong command a runtime registers in RestoreCmd.
type RestoreCommand interface {
	FillRestore(req *daemonv1.RestoreRequest) error
}

// List describes the table for `cedana features` and the daemon's ListFeatures.
func List() *daemonv1.ListFeaturesResponse {
	resp := &daemonv1.ListFeaturesResponse{KnownRuntimes: Runtimes()}
	for _, f := range Table() {
		resp.Features = append(resp.Features, &daemonv1.FeatureProviders{
			Name: f.Name(), Description: f.Description(), Runtimes: f.Names(),
		})
	}
	return resp
}

// RunCommand is implemented by the kong command a runtime registers in RunCmd.
type RunCommand interface {
	FillRun(req *daemonv1.RunRequest) error
}

// ManageCommand is implemented by the kong command a runtime registers in ManageCmd.
type ManageCommand interface {
	FillManage(req *daemonv1.ManageRequest) error
}

// JobStarter starts the workload a RunRequest describes through the job manager.
type JobStarter func(ctx context.Context, m *jobs.Manager, req *daemonv1.RunRequest) (store.Job, error)

// JobAdopter adopts the workload a ManageRequest names through the job manager.
type JobAdopter func(ctx context.Context, m *jobs.Manager, req *daemonv1.ManageRequest) (store.Job, error)

// Stdio are the standard streams a process gets.
type Stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// InProcessRunner starts the workload a RunRequest describes as a child of the calling process,
// with stdio, for `cedana run <runtime> --no-server`; the caller waits for it and exits with its
// exit code. A process that is not the caller's child is a workload started and left to its own
// supervisor (runc's --detach): there is nothing to wait for.
type InProcessRunner func(req *daemonv1.RunRequest, stdio Stdio) (*os.Process, error)

// JobDetailsFunc completes details, a job's runtime details as recorded when the job started,
// with what changes while the job runs: pid is the job's current process.
type JobDetailsFunc func(details *daemonv1.Details, pid int)

// PodPreparer readies dir, the images of a container's entry of a pod checkpoint, for the restore
// of that container by the Kubernetes runtime handler (`runc restore`): it refuses a checkpoint
// the runtime cannot restore into a pod, and applies the checkpoint's writable layer to the
// overlayfs upper directory of rootfs, the new container's mounted root filesystem (nothing is
// applied when rootfs is "").
type PodPreparer func(ctx context.Context, dir, rootfs string) error
