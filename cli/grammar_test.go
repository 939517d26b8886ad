package cli

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCommandWord(t *testing.T) {
	for _, tc := range []struct {
		args []string
		word string
		ok   bool
	}{
		{nil, "", false},
		{[]string{"--version"}, "", false},
		{[]string{"ps"}, "ps", true},
		{[]string{"-o", "json", "ps"}, "ps", true},
		{[]string{"--output=json", "--address", "/tmp/x.sock", "job", "list"}, "job", true},
		{[]string{"--merge-config", "config"}, "config", true},
		{[]string{"ps", "--help"}, "", false},
		{[]string{"-h"}, "", false},
		{[]string{"run", "process", "--", "sh", "--help"}, "run", true},
		{[]string{"--", "ps"}, "", false},
	} {
		word, ok := commandWord(tc.args)
		assert.Equal(t, tc.word, word, "%q", tc.args)
		assert.Equal(t, tc.ok, ok, "%q", tc.args)
	}
}

// Every command of the whole grammar is found by its name and aliases.
func TestCommandFieldNamesEveryCommand(t *testing.T) {
	parser, err := newParser(&CLI{}, Env{Stdout: io.Discard, Stderr: io.Discard})
	require.NoError(t, err)
	for _, child := range parser.Model.Children {
		for _, name := range append([]string{child.Name}, child.Aliases...) {
			_, ok := commandField(name)
			assert.True(t, ok, "command %q", name)
		}
	}
	_, ok := commandField("nope")
	assert.False(t, ok)
}

// A command line parses to the same command and global flags with the pruned grammar as with the
// whole one.
func TestPrunedGrammarParsesAsTheWholeOne(t *testing.T) {
	env := Env{Stdout: io.Discard, Stderr: io.Discard}
	for _, args := range [][]string{
		{"ps"},
		{"-o", "json", "--address", "/tmp/fc.sock", "job", "list"},
		{"dump", "process", "42", "--compression", "zstd"},
		{"restore", "runc", "--help-not-a-flag-here"},
		{"run", "process", "--", "sh", "-c", "true"},
		{"exec", "sleep", "1"},
		{"checkpoint", "ls"},
		{"config", "--protocol", "tcp"},
		{"k8s", "setup"},
		{"daemon", "start"},
	} {
		whole := &CLI{}
		parser, err := newParser(whole, env)
		require.NoError(t, err)
		wantCtx, wantErr := parseArgs(parser, args)

		gotCtx, globals, gotErr := parseCommandLine(&CLI{}, env, args)
		if wantErr != nil {
			require.Error(t, gotErr, "%q", args)
			assert.Equal(t, wantErr.Error(), gotErr.Error(), "%q", args)
			continue
		}
		require.NoError(t, gotErr, "%q", args)
		assert.Equal(t, wantCtx.Command(), gotCtx.Command(), "%q", args)
		assert.Len(t, gotCtx.Model.Children, 1, "%q parsed with the pruned grammar", args)
		assert.Equal(t, whole.Globals, *globals, "%q", args)
	}
}
