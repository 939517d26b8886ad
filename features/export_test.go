package features

import "github.com/cedana/cedana/adapters"

// Register adds an implementation directly, for tests of Feature itself.
func (f *Feature[T]) Register(runtime string, impl T) { f.register(runtime, impl) }

// TestTables is a feature table of its own, for tests of Register that must not fill the
// package's.
type TestTables struct{ t tables }

// NewTestTables returns an empty table.
func NewTestTables() *TestTables {
	return &TestTables{tables{
		dumpCmd: New[Command]("dump-cmd", ""), restoreCmd: New[Command]("restore-cmd", ""),
		runCmd: New[Command]("run-cmd", ""), manageCmd: New[Command]("manage-cmd", ""),
		dumpMiddleware:    New[adapters.Middleware[adapters.DumpHandler]]("dump-middleware", ""),
		dumpHandler:       New[adapters.DumpHandler]("dump-handler", ""),
		restoreMiddleware: New[adapters.Middleware[adapters.RestoreHandler]]("restore-middleware", ""),
		restoreHandler:    New[adapters.RestoreHandler]("restore-handler", ""),
		runHandler:        New[JobStarter]("run-handler", ""),
		manageHandler:     New[JobAdopter]("manage-handler", ""),
		health:            New[Checker]("health-check", ""),
		noServer:          New[InProcessRunner]("no-server", ""),
		jobDetails:        New[JobDetailsFunc]("job-details", ""),
		helpers:           New[Helper]("helpers", ""),
		podDumpFlags:      New[PodDumpCommand]("pod-dump-flags", ""),
		podDump:           New[PodDumper]("pod-dump-handler", ""),
		podRestore:        New[PodPreparer]("pod-restore", ""),
		selfTest:          New[SelfTester]("self-test", ""),
		dumpCommit:        New[Committer]("dump-commit", ""),
		restoreStream:     New[struct{}]("restore-stream", ""),
		restoreLazy:       New[struct{}]("restore-lazy", ""),
		restoreNotLazy:    New[string]("restore-not-lazy", ""),
	}}
}

// Register declares rt into the test table.
func (tt *TestTables) Register(rt Runtime) { tt.t.register(rt) }

// Provides lists the features of the table that runtime has, by name.
func (tt *TestTables) Provides(runtime string) []string {
	var names []string
	for _, f := range []Described{
		tt.t.dumpCmd, tt.t.restoreCmd, tt.t.runCmd, tt.t.manageCmd, tt.t.runHandler, tt.t.manageHandler,
		tt.t.dumpMiddleware, tt.t.dumpHandler, tt.t.restoreMiddleware, tt.t.restoreHandler, tt.t.health, tt.t.noServer, tt.t.jobDetails, tt.t.podDumpFlags, tt.t.podDump,
		tt.t.podRestore, tt.t.selfTest, tt.t.dumpCommit, tt.t.restoreStream, tt.t.restoreLazy,
	} {
		if f.IsAvailable(runtime) {
			names = append(names, f.Name())
		}
	}
	return names
}

// Helper returns the table's helper called name.
func (tt *TestTables) Helper(name string) (Helper, bool) { return tt.t.helpers.Lookup(name) }

// NotLazy is the table's reason why runtime cannot restore lazily.
func (tt *TestTables) NotLazy(runtime string) string {
	why, _ := tt.t.restoreNotLazy.Lookup(runtime)
	return why
}
