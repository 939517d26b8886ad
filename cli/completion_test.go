package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// asCedana makes the test binary act as cedana when the completion test runs it as such.
const asCedana = "CEDANA_CLI_TEST_AS_CEDANA"

func TestMain(m *testing.M) {
	if os.Getenv(asCedana) == "1" {
		os.Exit(Run(context.Background()))
	}
	os.Exit(m.Run())
}

// TestComplete: the candidates for the last word of a command line.
func TestComplete(t *testing.T) {
	parser, err := newParser(&CLI{}, Env{Stdout: io.Discard, Stderr: io.Discard})
	require.NoError(t, err)
	tests := []struct {
		words    []string
		want     []string
		excluded []string
	}{
		{[]string{""}, []string{"run", "exec", "dump", "restore", "kill", "delete", "version", "completion"}, []string{"internal", "__complete"}},
		{[]string{"re"}, []string{"restore"}, []string{"run"}},
		{[]string{"run", ""}, []string{"process", "runc", "containerd"}, nil},
		{[]string{"run", "process", "--j"}, []string{"--jid"}, []string{"--out"}},
		{[]string{"dump", "process", "--"}, []string{"--leave-running", "--output", "--help"}, nil},
		{[]string{"-o", ""}, []string{"text", "json"}, nil},
		{[]string{"--output", "j"}, []string{"json"}, []string{"text"}},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}, nil},
		{[]string{"job", "k"}, []string{"kill"}, nil},
		{[]string{"ls"}, nil, nil}, // an alias is accepted, not offered
		{[]string{"run", "process", "--", "x", ""}, nil, nil},
		{[]string{"run", "process", "--jid", ""}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.words, " "), func(t *testing.T) {
			got := complete(parser.Model.Node, tt.words)
			if tt.want == nil {
				assert.Empty(t, got)
			}
			assert.Subset(t, got, tt.want)
			for _, no := range tt.excluded {
				assert.NotContains(t, got, no)
			}
		})
	}
}

// TestCompletionScripts: the bash script is valid and completes subcommands through the binary,
// in a real bash; the zsh and fish scripts call the binary the same way.
func TestCompletionScripts(t *testing.T) {
	bash, err := exec.LookPath("bash")
	require.NoError(t, err, "bash is needed to check the bash completion script")
	self, err := os.Executable()
	require.NoError(t, err)
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "cedana"), []byte("#!/bin/sh\n"+asCedana+"=1 exec "+self+" \"$@\"\n"), 0o755))

	script := filepath.Join(t.TempDir(), "cedana.bash")
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var out bytes.Buffer
		code := Main(context.Background(), []string{"completion", shell}, Env{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }})
		require.Equal(t, 0, code)
		assert.Contains(t, out.String(), "cedana __complete --")
		if shell == "bash" {
			require.NoError(t, os.WriteFile(script, out.Bytes(), 0o644))
		}
	}
	out, err := exec.Command(bash, "-n", script).CombinedOutput()
	require.NoError(t, err, "bash -n: %s", out)

	for line, want := range map[string]string{
		"cedana ru":                "run",
		"cedana job k":             "kill",
		"cedana run pro":           "process",
		"cedana run process --pid": "--pid-file",
		"cedana completion z":      "zsh",
	} {
		words := strings.Fields(line)
		cmd := exec.Command(bash, "-c", `source "$1"; COMP_WORDS=(${2}); COMP_CWORD=$3; _cedana_complete; printf '%s\n' "${COMPREPLY[@]}"`,
			"bash", script, line, strconv.Itoa(len(words)-1))
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, want+"\n", string(out), line)
	}
}
