package cli

import (
	"reflect"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// Building kong's model of the whole grammar (every command, every runtime's subcommands, every
// tag interpolated) costs several milliseconds at each start, more than a short command's own
// work. A command line whose first word names a command is parsed with a grammar holding only
// the global flags and that command; anything else (no command, help, completion, a parse error
// to report with the whole grammar's usage) goes through the whole grammar, as before.

// completeCommand is the hidden command the completion scripts call; it completes against the
// whole grammar.
const completeCommand = "__complete"

// valueFlags are the global flags that take their value as the next word.
var valueFlags = []string{"--address", "--protocol", "--config-dir", "--config", "--output", "-o"}

// commandWord returns the first word of args that is not a global flag or its value, and false
// when args need the whole grammar: there is no such word before `--`, or help is asked for.
func commandWord(args []string) (string, bool) {
	word := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == separator:
			return word, word != ""
		case a == "-h" || a == "--help":
			return "", false
		case word != "":
			continue // look on for help only
		case strings.HasPrefix(a, "-"):
			if slices.Contains(valueFlags, a) {
				i++
			}
		default:
			word = a
		}
	}
	return word, word != ""
}

// commandField returns the field of CLI that holds the top-level command named (or aliased) name.
func commandField(name string) (reflect.StructField, bool) {
	t := reflect.TypeFor[CLI]()
	for i := range t.NumField() {
		f := t.Field(i)
		if _, ok := f.Tag.Lookup("cmd"); !ok {
			continue
		}
		names := []string{strings.ToLower(f.Name)}
		if n, ok := f.Tag.Lookup("name"); ok {
			names = []string{n}
		}
		if a, ok := f.Tag.Lookup("aliases"); ok {
			names = append(names, strings.Split(a, ",")...)
		}
		if slices.Contains(names, name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// newCommandParser builds the grammar of the global flags and of the command in field only; a nil
// field gives the global flags alone, enough for --version. It returns the parser and the Globals
// it fills.
func newCommandParser(cli *CLI, env Env, field *reflect.StructField) (*kong.Kong, *Globals, error) {
	fields := []reflect.StructField{{Name: "Globals", Type: reflect.TypeFor[Globals](), Tag: `embed:""`}}
	if field != nil {
		fields = append(fields, reflect.StructField{Name: field.Name, Type: field.Type, Tag: field.Tag})
	}
	grammar := reflect.New(reflect.StructOf(fields)).Elem()
	if field != nil {
		// The command's runtime subcommands (kong.Plugins) are set on cli by fillPlugins.
		grammar.Field(1).Set(reflect.ValueOf(cli).Elem().FieldByIndex(field.Index))
	}
	parser, err := kong.New(grammar.Addr().Interface(), parserOptions(env)...)
	return parser, grammar.Field(0).Addr().Interface().(*Globals), err
}

// parseCommandLine parses args with the smallest grammar that parses them as the whole grammar
// does, and returns the context and the global flags it filled.
func parseCommandLine(cli *CLI, env Env, args []string) (*kong.Context, *Globals, error) {
	fillPlugins(cli)
	if word, ok := commandWord(args); ok || slices.Contains(args, "--version") {
		var field *reflect.StructField
		if f, found := commandField(word); found && word != completeCommand {
			field = &f
		}
		if field != nil || !ok {
			if parser, g, err := newCommandParser(cli, env, field); err == nil {
				if kctx, err := parseArgs(parser, args); err == nil {
					return kctx, g, nil
				}
			}
		}
	}
	parser, err := kong.New(cli, parserOptions(env)...)
	if err != nil {
		return nil, nil, err
	}
	kctx, err := parseArgs(parser, args)
	return kctx, &cli.Globals, err
}
