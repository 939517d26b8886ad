package cli

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	_ "github.com/cedana/cedana/runtimes/all"
)

// parseRun parses a `run` or `exec` command line into the request it sends and its flags.
func parseRun(t *testing.T, args ...string) (*daemonv1.RunRequest, RunFlags) {
	t.Helper()
	cli := &CLI{}
	parser, err := newParser(cli, Env{Stdout: io.Discard, Stderr: io.Discard})
	require.NoError(t, err)
	kctx, err := parseArgs(parser, args)
	require.NoError(t, err)
	req := &daemonv1.RunRequest{}
	flags := cli.Run.RunFlags
	if kctx.Command() != "" && args[0] == "exec" {
		leaf, ok := cli.Exec.Plugins[0].(features.RunCommand)
		require.True(t, ok)
		require.NoError(t, leaf.FillRun(req))
		return req, cli.Exec.RunFlags
	}
	leaf, err := selected[features.RunCommand](kctx, "run")
	require.NoError(t, err)
	require.NoError(t, leaf.FillRun(req))
	return req, flags
}

// TestInterspersedRunFlags: cedana's own long flags may follow the program's words, as in Cedana;
// every other word, unknown flags included, is the program's, in order, and `--` ends cedana's
// flags.
func TestInterspersedRunFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		path  string
		argv  []string
		flags RunFlags
	}{
		{"cedana's form", []string{"run", "process", "echo", "hello", "--jid", "j1", "--attach"}, "echo", []string{"hello"}, RunFlags{JID: "j1", Attach: true}},
		{"attachable", []string{"run", "process", "./date-loop.sh", "3", "5", "--jid", "j2", "--attachable"}, "./date-loop.sh", []string{"3", "5"}, RunFlags{JID: "j2", Attachable: true}},
		{"unknown flags stay", []string{"run", "process", "python3", "train.py", "--epochs", "100", "--jid", "t"}, "python3", []string{"train.py", "--epochs", "100"}, RunFlags{JID: "t"}},
		{"flags first", []string{"run", "process", "--jid", "t", "echo", "a", "b"}, "echo", []string{"a", "b"}, RunFlags{JID: "t"}},
		{"separator first", []string{"run", "process", "--jid", "t", "--", "prog", "--jid", "x"}, "prog", []string{"--jid", "x"}, RunFlags{JID: "t"}},
		{"separator after program", []string{"run", "process", "prog", "--jid", "t", "--", "--jid", "x"}, "prog", []string{"--jid", "x"}, RunFlags{JID: "t"}},
		{"separator mid-args", []string{"run", "process", "prog", "a", "--jid", "t", "--", "b", "--out", "o"}, "prog", []string{"a", "b", "--out", "o"}, RunFlags{JID: "t"}},
		{"second separator is the program's", []string{"run", "process", "prog", "--", "a", "--", "b"}, "prog", []string{"a", "--", "b"}, RunFlags{}},
		{"inline value", []string{"run", "process", "prog", "a", "--jid=t", "--out=/tmp/o"}, "prog", []string{"a"}, RunFlags{JID: "t", Out: "/tmp/o"}},
		{"short flags are the program's", []string{"run", "process", "ls", "-l", "-o", "x", "--jid", "t"}, "ls", []string{"-l", "-o", "x"}, RunFlags{JID: "t"}},
		{"global long flags are the program's", []string{"run", "process", "prog", "a", "--output", "dir", "--address", "h"}, "prog", []string{"a", "--output", "dir", "--address", "h"}, RunFlags{}},
		{"unknown flag first", []string{"run", "process", "prog", "-n", "hi", "--jid", "t"}, "prog", []string{"-n", "hi"}, RunFlags{JID: "t"}},
		{"pid-file and no-server", []string{"run", "process", "sleep", "1", "--pid-file", "/tmp/p", "--no-server"}, "sleep", []string{"1"}, RunFlags{PIDFile: "/tmp/p", NoServer: true}},
		{"no arguments", []string{"run", "process", "true"}, "true", nil, RunFlags{}},
		{"only flags after the program", []string{"run", "process", "true", "--jid", "t"}, "true", nil, RunFlags{JID: "t"}},
		{"exec", []string{"exec", "echo", "hello", "--jid", "j"}, "echo", []string{"hello"}, RunFlags{JID: "j"}},
		{"exec separator", []string{"exec", "--jid", "j", "--", "echo", "--jid", "x"}, "echo", []string{"--jid", "x"}, RunFlags{JID: "j"}},
		{"exec attach", []string{"exec", "sh", "-c", "exit 3", "--attach"}, "sh", []string{"-c", "exit 3"}, RunFlags{Attach: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, flags := parseRun(t, tt.args...)
			assert.Equal(t, tt.path, req.GetProcess().GetPath())
			assert.Equal(t, tt.argv, req.GetProcess().GetArgs())
			assert.Equal(t, tt.flags, flags)
		})
	}
}

// TestInterspersedContainerd: the container's command follows the image, and the runtime's long
// flags (--id, --namespace) as well as run's may follow it; its short ones (-n) are the command's.
func TestInterspersedContainerd(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		ns    string
		id    string
		argv  []string
		flags RunFlags
	}{
		{"flags after the command", []string{"run", "containerd", "img", "sh", "-c", "sleep 9", "--id", "c1", "--jid", "j"}, "default", "c1", []string{"sh", "-c", "sleep 9"}, RunFlags{JID: "j"}},
		{"short flag is the command's", []string{"run", "containerd", "img", "echo", "-n", "x", "--id", "c1", "--namespace", "ns"}, "ns", "c1", []string{"echo", "-n", "x"}, RunFlags{}},
		{"flags before", []string{"run", "containerd", "--id", "c1", "-n", "ns", "img", "--", "echo", "--id"}, "ns", "c1", []string{"echo", "--id"}, RunFlags{}},
		{"image's own command", []string{"run", "containerd", "img", "--id", "c1", "--attach"}, "default", "c1", nil, RunFlags{Attach: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, flags := parseRun(t, tt.args...)
			assert.Equal(t, "img", req.GetContainerd().GetImage())
			assert.Equal(t, tt.id, req.GetContainerd().GetId())
			assert.Equal(t, tt.ns, req.GetContainerd().GetNamespace())
			assert.Equal(t, tt.argv, req.GetContainerd().GetArgs())
			assert.Equal(t, tt.flags, flags)
		})
	}
}

// TestHoistFlagsLeavesOthers: commands without a program's words parse as kong parses them.
func TestHoistFlagsLeavesOthers(t *testing.T) {
	parser, err := newParser(&CLI{}, Env{Stdout: io.Discard, Stderr: io.Discard})
	require.NoError(t, err)
	for _, args := range [][]string{
		{"manage", "process", "123", "--jid", "m"},
		{"manage", "runc", "c1", "--jid", "m", "--root", "/r"},
		{"dump", "process", "123", "--dir", "/d"},
		{"job", "kill", "a", "b", "--signal", "TERM"},
		{"internal", "helper", "--jid", "x"},
		{"run", "runc", "--id", "c", "--bundle", "/b"},
		{"frobnicate", "--jid"},
	} {
		assert.Equal(t, args, hoistFlags(parser, args), args)
	}
}

// TestManageFlagsAfterArguments: manage takes no program's words, so its flags already go anywhere.
func TestManageFlagsAfterArguments(t *testing.T) {
	for _, args := range [][]string{
		{"manage", "process", "123", "--jid", "m"},
		{"manage", "--jid", "m", "process", "123"},
		{"manage", "containerd", "c1", "--jid", "m", "-n", "ns"},
	} {
		cli := &CLI{}
		parser, err := newParser(cli, Env{Stdout: io.Discard, Stderr: io.Discard})
		require.NoError(t, err)
		_, err = parseArgs(parser, args)
		require.NoError(t, err, args)
		assert.Equal(t, "m", cli.Manage.JID, args)
	}
}
