package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// EnvNames lists every environment variable Load reads, in struct order: EnvPrefix, then the
// env tags of the sections (envPrefix) and keys (env) of Config.
func EnvNames() []string {
	params, err := env.GetFieldParamsWithOptions(&Config{}, env.Options{Prefix: EnvPrefix})
	if err != nil {
		panic(fmt.Sprintf("config: the env tags of Config: %v", err)) // TestEnvNames checks them
	}
	names := make([]string, len(params))
	for i, p := range params {
		names[i] = p.Key
	}
	return names
}

// applyEnv sets each key of cfg whose CEDANA_<SECTION>_<KEY> variable getenv reads as not empty.
func applyEnv(cfg *Config, getenv func(string) string) error {
	set := map[string]string{}
	for _, name := range EnvNames() {
		if v := getenv(name); v != "" {
			set[name] = v
		}
	}
	var name string // the variable being parsed: OnSet names it just before its parser runs
	err := env.ParseWithOptions(cfg, env.Options{
		Prefix:      EnvPrefix,
		Environment: set,
		OnSet:       func(tag string, _ any, _ bool) { name = tag },
		FuncMap:     envParsers(&name),
	})
	var bad *envError
	for _, e := range envErrors(err) {
		if errors.As(e, &bad) {
			return bad
		}
	}
	if err != nil {
		return fmt.Errorf("environment variables: %w", err)
	}
	return nil
}

// envParsers parses every type of Config's keys (strings as they are, lists comma-separated
// with blanks dropped, durations as Go durations); a failure is an envError naming *name.
func envParsers(name *string) map[reflect.Type]env.ParserFunc {
	named := func(parse func(string) (any, error)) env.ParserFunc {
		return func(raw string) (any, error) {
			v, err := parse(raw)
			if err != nil {
				return nil, &envError{name: *name, raw: raw, err: err}
			}
			return v, nil
		}
	}
	return map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[string](): named(func(s string) (any, error) { return s, nil }),
		reflect.TypeFor[bool]():   named(func(s string) (any, error) { return strconv.ParseBool(s) }),
		reflect.TypeFor[int64]():  named(func(s string) (any, error) { return strconv.ParseInt(s, 10, 64) }),
		reflect.TypeFor[Duration](): named(func(s string) (any, error) {
			d, err := time.ParseDuration(s)
			return Duration(d), err
		}),
		reflect.TypeFor[[]string](): named(func(s string) (any, error) {
			var list []string
			for item := range strings.SplitSeq(s, ",") {
				if item = strings.TrimSpace(item); item != "" {
					list = append(list, item)
				}
			}
			return list, nil
		}),
	}
}

// envErrors are the errors env.ParseWithOptions gathered, each unwrapped from its ParseError.
func envErrors(err error) []error {
	var all env.AggregateError
	if !errors.As(err, &all) {
		return nil
	}
	errs := make([]error, len(all.Errors))
	for i, e := range all.Errors {
		var parse env.ParseError
		if errors.As(e, &parse) {
			e = parse.Err
		}
		errs[i] = e
	}
	return errs
}

// envError is an environment variable whose value does not parse.
type envError struct {
	name, raw string
	err       error
}

func (e *envError) Error() string {
	return fmt.Sprintf("environment variable %s=%q: %v", e.name, e.raw, e.err)
}

func (e *envError) Unwrap() error { return e.err }
