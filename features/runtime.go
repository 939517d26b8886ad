package features

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/cedana/cedana/adapters"
)

// Runtime declares one runtime: its name, its build tag and every capability it provides. A
// runtime package passes one to Register, once, from its init(); Register fills the feature table
// from it.
//
// Mandatory, or Register panics with the runtime's name: Name, BuildTag (BuildTag(Name), the tag
// of the runtime's gate file in runtimes/all), Dump.Command,
// Dump.Handler, Restore.Command, Restore.Handler and Health. Every runtime can be checkpointed,
// restored and checked, and the CLI and `cedana features` take a runtime with these as compiled
// in. The rest is optional; Run and Manage are each all or nothing (a subcommand with its
// handler), and NoServer needs Run (it starts what the run subcommand describes). Each
// subcommand is named after the runtime (Subcommand builds one) and implements its verb's
// interface (DumpCommand, ...).
type Runtime struct {
	// Name is the runtime's name: the request type it serves and its CLI subcommands' name.
	Name string
	// BuildTag is the tag that adds the runtime to a `-tags custom` build.
	BuildTag string

	// Dump is `cedana dump <runtime>` and the runtime's part of the daemon's dump chain.
	Dump Dump
	// Restore is `cedana restore <runtime>` and the runtime's part of the daemon's restore chain.
	Restore Restore
	// Health says whether the runtime can be used on this machine now.
	Health Checker

	// Run is `cedana run <runtime>`: start a workload as a managed job (optional).
	Run Run
	// Manage is `cedana manage <runtime>`: adopt a running workload as a managed job (optional).
	Manage Manage
	// NoServer runs the workload of `cedana run <runtime> --no-server` as the CLI's child; only a
	// runtime that has it takes --no-server, for run and restore (optional).
	NoServer InProcessRunner
	// JobDetails completes a job's recorded details with what changes while it runs (optional).
	JobDetails JobDetailsFunc
	// Helpers are the programs the runtime starts as processes of the cedana binary (optional).
	Helpers []Helper
	// PodDump checkpoints a Kubernetes pod's containers that the runtime runs (optional; its
	// flags and handler, both or neither).
	PodDump PodDump
	// PodRestore readies a pod checkpoint's container for the runtime handler's restore (optional).
	PodRestore PodPreparer
	// Freeze holds the runtime's workloads stopped and lets them run again (optional).
	Freeze Freeze
	// Query describes the runtime's workloads (optional).
	Query Query
	// SelfTest starts a tiny workload for `cedana check --full` (optional).
	SelfTest SelfTester
}

// Dump is a runtime's dump: its subcommand, middleware and handler.
type Dump struct {
	// Command is the `cedana dump <runtime>` subcommand (see Command); it implements DumpCommand.
	Command Command
	// Middleware runs after the common adapters, before Handler (optional).
	Middleware adapters.Middleware[adapters.DumpHandler]
	// Handler performs the dump at the end of the chain (usually adapters.DumpWithCRIU).
	Handler adapters.DumpHandler
	// Migrates says that a dump with leave_stopped leaves the workload whole, resumed by a
	// SIGCONT to its processes: `cedana migrate` may move it (optional).
	Migrates bool
	// Commit takes a request's image and rootfs_only into the runtime's details (optional: a
	// runtime without it refuses them).
	Commit Committer
}

// Restore is a runtime's restore: its subcommand, middleware and handler.
type Restore struct {
	// Command is the `cedana restore <runtime>` subcommand; it implements RestoreCommand.
	Command Command
	// Middleware runs after the common adapters, before Handler (optional).
	Middleware adapters.Middleware[adapters.RestoreHandler]
	// Handler performs the restore at the end of the chain.
	Handler adapters.RestoreHandler
	// Streams says that Handler restores from an archive's stream when the chain offers one
	// (State.RestoreStream); for other runtimes the chain unpacks the images first.
	Streams bool
	// Lazy says that Handler restores lazily when the request asks (RestoreRequest.lazy,
	// State.Lazy); a lazy restore of another runtime is refused before anything is touched.
	Lazy bool
	// NotLazy, for a runtime without Lazy, says why it cannot restore lazily: the refusal of a
	// lazy restore quotes it (optional).
	NotLazy string
}

// Run is a runtime's `cedana run`: its subcommand and the handler that starts the job.
type Run struct {
	// Command is the `cedana run <runtime>` subcommand; it implements RunCommand.
	Command Command
	// Handler starts the workload the subcommand describes.
	Handler JobStarter
}

// Manage is a runtime's `cedana manage`: its subcommand and the handler that adopts the workload.
type Manage struct {
	// Command is the `cedana manage <runtime>` subcommand; it implements ManageCommand.
	Command Command
	// Handler adopts the workload the subcommand names.
	Handler JobAdopter
}

// Register declares a runtime: it checks the declaration and fills the feature table and the
// helpers from it. It is meant for the runtime package's init(), once per runtime, and panics,
// naming the runtime, on a declaration that lacks a mandatory capability, is inconsistent, or
// names a runtime declared before: these are programming mistakes.
func Register(rt Runtime) {
	registry.register(rt)
}

// Declared lists the runtimes this binary has (those declared with Register), sorted.
func Declared() []string {
	return registry.dumpHandler.Names()
}

// Runtimes lists the runtimes this binary knows of: KnownRuntimes, in their order, whether it has
// them or not, then any other runtime declared with Register.
func Runtimes() []string {
	names := slices.Clone(KnownRuntimes)
	for _, name := range Declared() {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// tables is what Register fills: the package's feature table, or a fresh one in tests.
type tables struct {
	dumpCmd, restoreCmd, runCmd, manageCmd *Feature[Command]
	dumpMiddleware                         *Feature[adapters.Middleware[adapters.DumpHandler]]
	dumpHandler                            *Feature[adapters.DumpHandler]
	restoreMiddleware                      *Feature[adapters.Middleware[adapters.RestoreHandler]]
	restoreHandler                         *Feature[adapters.RestoreHandler]
	runHandler                             *Feature[JobStarter]
	manageHandler                          *Feature[JobAdopter]
	health                                 *Feature[Checker]
	noServer                               *Feature[InProcessRunner]
	jobDetails                             *Feature[JobDetailsFunc]
	podRestore                             *Feature[PodPreparer]
	helpers                                *Feature[Helper]
	podDumpFlags                           *Feature[PodDumpCommand]
	podDump                                *Feature[PodDumper]
	freezeCmd, unfreezeCmd, queryCmd       *Feature[Command]
	freezeHandler                          *Feature[Freezer]
	queryHandler                           *Feature[Querier]
	selfTest                               *Feature[SelfTester]
	dumpCommit                             *Feature[Committer]
	restoreStream, restoreLazy, migrate    *Feature[struct{}]
	restoreNotLazy                         *Feature[string]
}

// registry is the package's table, which the daemon and the CLI read.
var registry = tables{
	dumpCmd: DumpCmd, restoreCmd: RestoreCmd, runCmd: RunCmd, manageCmd: ManageCmd,
	dumpMiddleware: DumpMiddleware, dumpHandler: DumpHandler,
	restoreMiddleware: RestoreMiddleware, restoreHandler: RestoreHandler,
	runHandler: RunHandler, manageHandler: ManageHandler,
	health: HealthCheck, noServer: NoServer, jobDetails: JobDetails, helpers: helpers,
	podDumpFlags: PodDumpFlags, podDump: PodDumpHandler,
	podRestore: PodRestore,
	freezeCmd:  FreezeCmd, unfreezeCmd: UnfreezeCmd, freezeHandler: FreezeHandler,
	queryCmd: QueryCmd, queryHandler: QueryHandler,
	selfTest: SelfTest, dumpCommit: DumpCommit, restoreStream: RestoreStream,
	restoreLazy: RestoreLazy, restoreNotLazy: restoreNotLazy, migrate: Migrate,
}

func (t *tables) register(rt Runtime) {
	if err := t.check(rt); err != nil {
		panic(fmt.Sprintf("features: runtime %q: %v", rt.Name, err))
	}
	t.dumpCmd.register(rt.Name, rt.Dump.Command)
	t.restoreCmd.register(rt.Name, rt.Restore.Command)
	t.dumpHandler.register(rt.Name, rt.Dump.Handler)
	t.restoreHandler.register(rt.Name, rt.Restore.Handler)
	t.health.register(rt.Name, rt.Health)
	registerIf(t.dumpMiddleware, rt.Name, rt.Dump.Middleware, rt.Dump.Middleware != nil)
	registerIf(t.restoreMiddleware, rt.Name, rt.Restore.Middleware, rt.Restore.Middleware != nil)
	registerIf(t.runCmd, rt.Name, rt.Run.Command, rt.Run.Command != nil)
	registerIf(t.runHandler, rt.Name, rt.Run.Handler, rt.Run.Handler != nil)
	registerIf(t.manageCmd, rt.Name, rt.Manage.Command, rt.Manage.Command != nil)
	registerIf(t.manageHandler, rt.Name, rt.Manage.Handler, rt.Manage.Handler != nil)
	registerIf(t.noServer, rt.Name, rt.NoServer, rt.NoServer != nil)
	registerIf(t.jobDetails, rt.Name, rt.JobDetails, rt.JobDetails != nil)
	registerIf(t.podDumpFlags, rt.Name, rt.PodDump.Flags, rt.PodDump.Flags != nil)
	registerIf(t.podDump, rt.Name, rt.PodDump.Handler, rt.PodDump.Handler != nil)
	registerIf(t.podRestore, rt.Name, rt.PodRestore, rt.PodRestore != nil)
	registerIf(t.freezeCmd, rt.Name, rt.Freeze.Freeze, rt.Freeze.Handler != nil)
	registerIf(t.unfreezeCmd, rt.Name, rt.Freeze.Unfreeze, rt.Freeze.Handler != nil)
	registerIf(t.freezeHandler, rt.Name, rt.Freeze.Handler, rt.Freeze.Handler != nil)
	registerIf(t.queryCmd, rt.Name, rt.Query.Command, rt.Query.Handler != nil)
	registerIf(t.queryHandler, rt.Name, rt.Query.Handler, rt.Query.Handler != nil)
	registerIf(t.selfTest, rt.Name, rt.SelfTest, rt.SelfTest != nil)
	registerIf(t.dumpCommit, rt.Name, rt.Dump.Commit, rt.Dump.Commit != nil)
	registerIf(t.restoreStream, rt.Name, struct{}{}, rt.Restore.Streams)
	registerIf(t.restoreLazy, rt.Name, struct{}{}, rt.Restore.Lazy)
	registerIf(t.restoreNotLazy, rt.Name, rt.Restore.NotLazy, rt.Restore.NotLazy != "")
	registerIf(t.migrate, rt.Name, struct{}{}, rt.Dump.Migrates)
	for _, h := range rt.Helpers {
		t.helpers.register(h.Name, h)
	}
}

func registerIf[T any](f *Feature[T], runtime string, impl T, provided bool) {
	if provided {
		f.register(runtime, impl)
	}
}

// check returns what is wrong with a declaration before anything of it is registered.
func (t *tables) check(rt Runtime) error {
	switch {
	case rt.Name == "":
		return errors.New("no name")
	case rt.BuildTag != BuildTag(rt.Name):
		return fmt.Errorf("build tag %q, want %q (the tag of its gate file in runtimes/all)", rt.BuildTag, BuildTag(rt.Name))
	case rt.Dump.Handler == nil:
		return errors.New("no dump handler")
	case rt.Restore.Handler == nil:
		return errors.New("no restore handler")
	case rt.Health == nil:
		return errors.New("no health check")
	case (rt.Run.Command == nil) != (rt.Run.Handler == nil):
		return errors.New("run needs both its subcommand and its handler")
	case (rt.Manage.Command == nil) != (rt.Manage.Handler == nil):
		return errors.New("manage needs both its subcommand and its handler")
	case (rt.PodDump.Flags == nil) != (rt.PodDump.Handler == nil):
		return errors.New("pod dump needs both its flags and its handler")
	case (rt.Freeze.Freeze == nil) != (rt.Freeze.Handler == nil) || (rt.Freeze.Unfreeze == nil) != (rt.Freeze.Handler == nil):
		return errors.New("freeze needs its freeze and unfreeze subcommands and its handler")
	case (rt.Query.Command == nil) != (rt.Query.Handler == nil):
		return errors.New("query needs both its subcommand and its handler")
	case rt.NoServer != nil && rt.Run.Handler == nil:
		return errors.New("a --no-server mode needs run")
	case rt.Restore.Lazy && rt.Restore.NotLazy != "":
		return errors.New("restore is both lazy and not (Lazy with NotLazy)")
	}
	if _, dup := t.dumpHandler.Lookup(rt.Name); dup {
		return errors.New("declared twice")
	}
	commands := []struct {
		verb  string
		cmd   Command
		iface reflect.Type
	}{
		{"dump", rt.Dump.Command, reflect.TypeFor[DumpCommand]()},
		{"restore", rt.Restore.Command, reflect.TypeFor[RestoreCommand]()},
		{"run", rt.Run.Command, reflect.TypeFor[RunCommand]()},
		{"manage", rt.Manage.Command, reflect.TypeFor[ManageCommand]()},
		{"freeze", rt.Freeze.Freeze, reflect.TypeFor[TargetCommand]()},
		{"unfreeze", rt.Freeze.Unfreeze, reflect.TypeFor[TargetCommand]()},
		{"query", rt.Query.Command, reflect.TypeFor[TargetCommand]()},
	}
	for i, c := range commands {
		if c.cmd == nil && i >= 2 {
			continue // optional, and checked in pairs above
		}
		if err := checkCommand(rt.Name, c.cmd, c.iface); err != nil {
			return fmt.Errorf("%s subcommand: %w", c.verb, err)
		}
	}
	seen := map[string]bool{}
	for _, h := range rt.Helpers {
		if h.Name == "" || h.Main == nil {
			return errors.New("a helper without a name or a Main")
		}
		if _, dup := t.helpers.Lookup(h.Name); dup || seen[h.Name] {
			return fmt.Errorf("helper %q declared twice", h.Name)
		}
		seen[h.Name] = true
	}
	return nil
}

// checkCommand checks the shape Command documents: a pointer to a struct whose one field is the
// subcommand, named after the runtime (the CLI sends it as the request's type), which implements
// iface through its pointer.
func checkCommand(runtime string, cmd Command, iface reflect.Type) error {
	if cmd == nil {
		return errors.New("missing")
	}
	v := reflect.ValueOf(cmd)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct || v.Elem().NumField() != 1 {
		return fmt.Errorf("%T is not a pointer to a struct with the subcommand as its one field", cmd)
	}
	field := v.Elem().Type().Field(0)
	if name := cmp.Or(field.Tag.Get("name"), strings.ToLower(field.Name)); name != runtime {
		return fmt.Errorf("named %q, not after the runtime", name)
	}
	if leaf := v.Elem().Field(0).Addr().Type(); !leaf.Implements(iface) {
		return fmt.Errorf("%s does not implement %s", leaf, iface)
	}
	return nil
}
