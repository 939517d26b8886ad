package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// CompletionCmd is `cedana completion bash|zsh|fish`: a script that completes cedana's commands
// and flags in that shell, by asking the binary itself (`cedana __complete`).
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"Shell: bash, zsh or fish."`
}

// completionScripts are the scripts by shell. Each calls `cedana __complete -- <words>` with the
// words after "cedana" up to the cursor, the last one the word being completed; with no candidate,
// bash and zsh fall back to file names.
var completionScripts = map[string]string{
	"bash": `# cedana completion for bash: source it, or put it in /etc/bash_completion.d/cedana.
_cedana_complete() {
    local IFS=$'\n'
    COMPREPLY=($(cedana __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _cedana_complete cedana
`,
	"zsh": `#compdef cedana
# cedana completion for zsh: put it in a directory of $fpath as _cedana, or source it.
_cedana() {
    local -a candidates
    candidates=("${(@f)$(cedana __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if (( ${#candidates} )) && [[ -n ${candidates[1]} ]]; then
        compadd -- "${candidates[@]}"
    else
        _files
    fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _cedana "$@"; else compdef _cedana cedana; fi
`,
	"fish": `# cedana completion for fish: put it in ~/.config/fish/completions/cedana.fish.
complete -c cedana -f -a '(cedana __complete -- (commandline -opc)[2..-1] (commandline -ct))'
`,
}

// Run prints the script.
func (c *CompletionCmd) Run(env Env) error {
	_, err := fmt.Fprint(env.Stdout, completionScripts[c.Shell])
	return err
}

// CompleteCmd is `cedana __complete -- <words>...`, which the completion scripts call: it prints
// the candidates for the last word, one a line.
type CompleteCmd struct {
	Words []string `arg:"" optional:"" passthrough:"" help:"The words after cedana; the last is the one to complete."`
}

// Run prints the candidates.
func (c *CompleteCmd) Run(kctx *kong.Context, env Env) error {
	words := c.Words
	if len(words) > 0 && words[0] == separator {
		words = words[1:]
	}
	for _, candidate := range complete(kctx.Model.Node, words) {
		fmt.Fprintln(env.Stdout, candidate)
	}
	return nil
}

// complete lists what may replace the last of words, the words after the program's name: the
// subcommands of the command the others select, its flags for a word starting with "-", or a
// flag's enumerated values.
func complete(node *kong.Node, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	prefix := words[len(words)-1]
	var valueOf *kong.Flag // the flag whose value the last word is
	positional := 0        // the node's positional arguments given
	for i := 0; i < len(words)-1; i++ {
		w := words[i]
		valueOf = nil
		switch {
		case w == separator:
			return nil // the program's words
		case strings.HasPrefix(w, "-"):
			if f := findFlag(node, w); f != nil && !strings.Contains(w, "=") && !f.IsBool() && !f.IsCounter() {
				if i+1 == len(words)-1 {
					valueOf = f
				}
				i++
			}
		default:
			if child := findChild(node, w); child != nil {
				node, positional = child, 0
			} else {
				positional++
			}
		}
	}
	var out []string
	add := func(c string) {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	switch {
	case valueOf != nil:
		if valueOf.Enum != "" {
			for _, v := range valueOf.EnumSlice() {
				add(v)
			}
		}
	case strings.HasPrefix(prefix, "-"):
		for _, group := range node.AllFlags(true) {
			for _, f := range group {
				add("--" + f.Name)
				if f.Short != 0 {
					add("-" + string(f.Short))
				}
			}
		}
	case positional < len(node.Positional) && node.Positional[positional].Enum != "":
		for _, v := range node.Positional[positional].EnumSlice() {
			add(v)
		}
	default:
		for _, child := range node.Children {
			if child.Type == kong.CommandNode && !child.Hidden {
				add(child.Name)
			}
		}
	}
	return out
}

// findChild is node's subcommand named (or aliased) name.
func findChild(node *kong.Node, name string) *kong.Node {
	for _, child := range node.Children {
		if child.Type == kong.CommandNode && (child.Name == name || slices.Contains(child.Aliases, name)) {
			return child
		}
	}
	return nil
}

// findFlag is the flag of node or its parents that word (`--name`, `--name=v` or `-s`) names.
func findFlag(node *kong.Node, word string) *kong.Flag {
	name, _, _ := strings.Cut(strings.TrimLeft(word, "-"), "=")
	for _, group := range node.AllFlags(false) {
		for _, f := range group {
			if f.Name == name || slices.Contains(f.Aliases, name) || (!strings.HasPrefix(word, "--") && f.Short != 0 && string(f.Short) == name) {
				return f
			}
		}
	}
	return nil
}
