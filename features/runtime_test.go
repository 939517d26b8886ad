package features_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/store"
	"github.com/cedana/cedana/withcriu"
)

// leaf implements every verb's command interface.
type leaf struct{}

func (leaf) FillDump(*daemonv1.DumpRequest) error       { return nil }
func (leaf) FillRestore(*daemonv1.RestoreRequest) error { return nil }
func (leaf) FillRun(*daemonv1.RunRequest) error         { return nil }
func (leaf) FillManage(*daemonv1.ManageRequest) error   { return nil }

var (
	_ features.DumpCommand    = (*leaf)(nil)
	_ features.RestoreCommand = (*leaf)(nil)
	_ features.RunCommand     = (*leaf)(nil)
	_ features.ManageCommand  = (*leaf)(nil)
)

// podFlags are runtime test's flags of `cedana dump pod`.
type podFlags struct{}

func (podFlags) FillDumpPod(*daemonv1.DumpPodRequest) error { return nil }

// command is runtime test's subcommand of a verb, written out as Subcommand builds it.
func command() features.Command {
	return &struct {
		Test leaf `cmd:""`
	}{}
}

// complete declares runtime name with every capability.
func complete(name string) features.Runtime {
	sub := func() features.Command { return features.Subcommand(name, "", &leaf{}) }
	return features.Runtime{
		Name:     name,
		BuildTag: "runtimes." + name,
		Dump: features.Dump{
			Command:    sub(),
			Middleware: adapters.Middleware[adapters.DumpHandler]{adapters.TimeDump},
			Handler:    withcriu.Dump,
			Commit:     func(*daemonv1.DumpRequest) error { return nil },
		},
		Restore: features.Restore{
			Command:    sub(),
			Middleware: adapters.Middleware[adapters.RestoreHandler]{adapters.TimeRestore},
			Handler:    withcriu.Restore,
		},
		Health: func(context.Context) (string, error) { return "fine", nil },
		Run: features.Run{Command: sub(), Handler: func(context.Context, *jobs.Manager, *daemonv1.RunRequest) (store.Job, error) {
			return store.Job{}, nil
		}},
		Manage: features.Manage{Command: sub(), Handler: func(context.Context, *jobs.Manager, *daemonv1.ManageRequest) (store.Job, error) {
			return store.Job{}, nil
		}},
		NoServer:   func(*daemonv1.RunRequest, features.Stdio) (*os.Process, error) { return nil, nil },
		JobDetails: func(*daemonv1.Details, int) {},
		PodDump: features.PodDump{Flags: podFlags{}, Handler: func(context.Context, *daemonv1.DumpPodRequest, features.PodDumpSteps) (*daemonv1.DumpPodResponse, error) {
			return nil, nil
		}},
		PodRestore: func(context.Context, string, string) error { return nil },
		SelfTest:   func(context.Context, string) (features.SelfTestWorkload, error) { return nil, nil },
		Helpers: []features.Helper{{Name: "test-helper", Main: func(context.Context, []string, features.Stdio) error {
			return nil
		}}},
	}
}

func TestRegisterComplete(t *testing.T) {
	table := features.NewTestTables()
	table.Register(complete("test"))
	assert.Equal(t, []string{
		"dump-cmd", "restore-cmd", "run-cmd", "manage-cmd", "run-handler", "manage-handler",
		"dump-middleware", "dump-handler", "restore-middleware", "restore-handler", "health-check", "no-server", "job-details",
		"pod-dump-flags", "pod-dump-handler", "pod-restore", "self-test", "dump-commit",
	},
		table.Provides("test"))
	_, ok := table.Helper("test-helper")
	assert.True(t, ok, "the runtime's helper is declared")
}

// TestRegisterLazy: a lazy restore is a capability; a reason it cannot be is not, but is kept.
func TestRegisterLazy(t *testing.T) {
	table := features.NewTestTables()
	lazy, notLazy := complete("lazy"), complete("notlazy")
	lazy.BuildTag, notLazy.BuildTag = "runtimes.lazy", "runtimes.notlazy"
	lazy.Restore.Lazy = true
	notLazy.Restore.NotLazy = "its shim cannot ask for it"
	lazy.Helpers, notLazy.Helpers = nil, nil
	table.Register(lazy)
	table.Register(notLazy)
	assert.Contains(t, table.Provides("lazy"), "restore-lazy")
	assert.NotContains(t, table.Provides("notlazy"), "restore-lazy")
	assert.Equal(t, "its shim cannot ask for it", table.NotLazy("notlazy"))
	assert.Empty(t, table.NotLazy("lazy"))
}

func TestRegisterMinimal(t *testing.T) {
	rt := features.Runtime{
		Name:     "test",
		BuildTag: "runtimes.test",
		Dump:     features.Dump{Command: command(), Handler: withcriu.Dump},
		Restore:  features.Restore{Command: command(), Handler: withcriu.Restore},
		Health:   func(context.Context) (string, error) { return "", nil },
	}
	table := features.NewTestTables()
	table.Register(rt)
	assert.Equal(t, []string{"dump-cmd", "restore-cmd", "dump-handler", "restore-handler", "health-check"}, table.Provides("test"))
}

func TestRegisterPanicsOnBadDeclaration(t *testing.T) {
	notAStruct := "dump"
	tests := []struct {
		name   string
		change func(rt *features.Runtime)
		msg    string
	}{
		{"no name", func(rt *features.Runtime) { rt.Name = "" }, "no name"},
		{"no build tag", func(rt *features.Runtime) { rt.BuildTag = "" }, `want "runtimes.test"`},
		{"wrong build tag", func(rt *features.Runtime) { rt.BuildTag = "runtimes.other" }, `build tag "runtimes.other"`},
		{"no dump command", func(rt *features.Runtime) { rt.Dump.Command = nil }, "dump subcommand: missing"},
		{"no dump handler", func(rt *features.Runtime) { rt.Dump.Handler = nil }, "no dump handler"},
		{"no restore command", func(rt *features.Runtime) { rt.Restore.Command = nil }, "restore subcommand: missing"},
		{"no restore handler", func(rt *features.Runtime) { rt.Restore.Handler = nil }, "no restore handler"},
		{"no health check", func(rt *features.Runtime) { rt.Health = nil }, "no health check"},
		{"run command without handler", func(rt *features.Runtime) { rt.Run.Handler = nil }, "run needs both"},
		{"run handler without command", func(rt *features.Runtime) { rt.Run.Command = nil }, "run needs both"},
		{"manage command without handler", func(rt *features.Runtime) { rt.Manage.Handler = nil }, "manage needs both"},
		{"manage handler without command", func(rt *features.Runtime) { rt.Manage.Command = nil }, "manage needs both"},
		{"pod dump flags without handler", func(rt *features.Runtime) { rt.PodDump.Handler = nil }, "pod dump needs both"},
		{"pod dump handler without flags", func(rt *features.Runtime) { rt.PodDump.Flags = nil }, "pod dump needs both"},
		{"no-server without run", func(rt *features.Runtime) { rt.Run = features.Run{} }, "--no-server mode needs run"},
		{"command not a struct pointer", func(rt *features.Runtime) { rt.Dump.Command = &notAStruct }, "not a pointer to a struct"},
		{"command that fills nothing", func(rt *features.Runtime) {
			rt.Manage.Command = &struct {
				Test struct{} `cmd:""`
			}{}
		}, "does not implement features.ManageCommand"},
		{"subcommand named after another runtime", func(rt *features.Runtime) {
			rt.Run.Command = features.Subcommand("other", "", &leaf{})
		}, `run subcommand: named "other"`},
		{"helper without a name", func(rt *features.Runtime) { rt.Helpers[0].Name = "" }, "helper without a name"},
		{"helper twice", func(rt *features.Runtime) { rt.Helpers = append(rt.Helpers, rt.Helpers[0]) }, `helper "test-helper" declared twice`},
		{"lazy and not", func(rt *features.Runtime) { rt.Restore.Lazy, rt.Restore.NotLazy = true, "no uffd" }, "both lazy and not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := complete("test")
			tt.change(&rt)
			table := features.NewTestTables()
			msg := recoverPanic(t, func() { table.Register(rt) })
			assert.Contains(t, msg, tt.msg)
			assert.Contains(t, msg, fmt.Sprintf("runtime %q", rt.Name), "the panic names the runtime")
			assert.Empty(t, table.Provides(rt.Name), "nothing of a bad declaration is registered")
		})
	}
}

func TestRegisterPanicsOnDuplicate(t *testing.T) {
	table := features.NewTestTables()
	table.Register(complete("test"))
	msg := recoverPanic(t, func() { table.Register(complete("test")) })
	assert.Contains(t, msg, `runtime "test": declared twice`)

	// Another runtime with a helper of the same name.
	other := complete("other")
	msg = recoverPanic(t, func() { table.Register(other) })
	assert.Contains(t, msg, `runtime "other": helper "test-helper" declared twice`)
	assert.Empty(t, table.Provides("other"))
}

// recoverPanic runs f, which must panic, and returns the panic's message.
func recoverPanic(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		require.NotNil(t, r, "Register must panic")
		msg = fmt.Sprint(r)
	}()
	f()
	return ""
}

func TestHelperCommandNeedsDeclaration(t *testing.T) {
	_, err := features.Helper{Name: "undeclared"}.Command("x")
	assert.ErrorContains(t, err, `helper "undeclared" is not declared`)
	_, ok := features.LookupHelper("undeclared")
	assert.False(t, ok)
}

// greet is a kong command with an argument and a field set before parsing.
type greet struct {
	Name string `arg:""`

	greeting string
}

func TestSubcommand(t *testing.T) {
	help := "Say \"hi\" to `someone`."
	cmd := features.Subcommand("greet", help, &greet{greeting: "hello"})
	var cli struct{ kong.Plugins }
	cli.Plugins = kong.Plugins{cmd}
	var out bytes.Buffer
	parser, err := kong.New(&cli, kong.Writers(&out, &out), kong.Exit(func(int) {}))
	require.NoError(t, err)
	kctx, err := parser.Parse([]string{"greet", "world"})
	require.NoError(t, err)
	assert.Equal(t, "greet <name>", kctx.Command())
	leaf, ok := kctx.Selected().Target.Addr().Interface().(*greet)
	require.True(t, ok, "the leaf is the runtime's own type")
	assert.Equal(t, greet{Name: "world", greeting: "hello"}, *leaf, "parsed into a copy of the given value")

	_, _ = parser.Parse([]string{"--help"})
	assert.Contains(t, out.String(), help, "the help text survives quoting")

	assert.Panics(t, func() { features.Subcommand("x", "", greet{}) }, "the leaf must be a pointer to a struct")
}
