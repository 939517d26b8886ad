package cli

import (
	"reflect"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// separator ends cedana's flags: every word after it goes to the program.
const separator = "--"

// parseArgs parses args with cedana's interspersed grammar: a command that runs a program
// (`run process`, `exec`, `run containerd <image> [cmd...]`) takes its own long flags anywhere
// before `--`, also after the program's words, as Cedana's cobra CLI does. kong stops at the
// program's first word, so the flags are moved in front of the program first; every other word,
// unknown flags included, stays the program's, in order.
func parseArgs(parser *kong.Kong, args []string) (*kong.Context, error) {
	kctx, err := parser.Parse(hoistFlags(parser, args))
	if err != nil {
		return kctx, err
	}
	for _, p := range kctx.Path {
		// kong keeps the `--` that hoistFlags puts in front of the program's words.
		if p.Positional != nil && p.Positional.Passthrough {
			if v := p.Positional.Target; v.Kind() == reflect.Slice && v.Len() > 0 && v.Index(0).String() == separator {
				v.Set(v.Slice(1, v.Len()))
			}
		}
	}
	return kctx, nil
}

// hoistFlags returns args with the selected command's own long flags that follow its program's
// first word (before any `--`) moved in front of that word, followed by `--` and the program's
// words. Without a visible command taking a program's words, or when the user's `--` already
// comes before the program, args are returned as they are.
func hoistFlags(parser *kong.Kong, args []string) []string {
	kctx, err := kong.Trace(parser, args)
	if err != nil || kctx.Error != nil {
		return args
	}
	var words []string
	var node *kong.Node
	for _, p := range kctx.Path {
		if p.Positional != nil && p.Positional.Passthrough && p.Parent != nil && !p.Parent.Hidden {
			node = p.Parent
			if v := kctx.Value(p); v.IsValid() && v.Kind() == reflect.Slice {
				words = v.Interface().([]string)
			}
		}
	}
	start := len(args) - len(words)
	if node == nil || len(words) == 0 || start < 0 || slices.Contains(args[:start], separator) {
		return args
	}
	head, tail := words, []string(nil)
	if i := slices.Index(words, separator); i >= 0 {
		head, tail = words[:i], words[i+1:]
	}
	flags := ownFlags(node)
	var hoisted, program []string
	for i := 0; i < len(head); i++ {
		f, inline := lookupFlag(flags, head[i])
		if f == nil {
			program = append(program, head[i])
			continue
		}
		hoisted = append(hoisted, head[i])
		if !inline && !f.IsBool() && !f.IsCounter() && i+1 < len(head) {
			i++
			hoisted = append(hoisted, head[i])
		}
	}
	out := append(slices.Clip(args[:start]), hoisted...)
	if rest := append(program, tail...); len(rest) > 0 {
		out = append(append(out, separator), rest...)
	}
	return out
}

// ownFlags are the flags of node and of its parent commands, not the application's global ones:
// `--output` or `--address` after a program's first word are the program's.
func ownFlags(node *kong.Node) []*kong.Flag {
	var flags []*kong.Flag
	for n := node; n != nil && n.Type != kong.ApplicationNode; n = n.Parent {
		flags = append(flags, n.Flags...)
	}
	return flags
}

// lookupFlag finds the flag a word names in its long form (`--jid`, `--jid=J`, `--no-x` for a
// negatable one); inline tells that the word carries the value. Short forms are the program's.
func lookupFlag(flags []*kong.Flag, word string) (flag *kong.Flag, inline bool) {
	name, ok := strings.CutPrefix(word, "--")
	if !ok || name == "" {
		return nil, false
	}
	name, _, inline = strings.Cut(name, "=")
	for _, f := range flags {
		if f.Name == name || slices.Contains(f.Aliases, name) || (f.Tag.Negatable != "" && name == "no-"+f.Name) {
			return f, inline
		}
	}
	return nil, false
}
