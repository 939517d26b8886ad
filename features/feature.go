// Package features is cedana's compile-time plugin registry: typed features, filled from the
// declaration each runtime passes to Register from its init(), that the CLI and the daemon look up
// by runtime name.
package features

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cedana/cedana/errs"
)

// ErrUnavailable is wrapped by every error about a runtime that this binary does not have; its kind
// is errdefs.ErrNotImplemented.
var ErrUnavailable = errs.Unimplemented("not available")

// Feature is one capability (a CLI subcommand, a dump middleware, ...) with an implementation of
// type T per runtime. Register fills it from runtimes' declarations in init(); it is read at
// request time.
type Feature[T any] struct {
	name        string
	description string

	mu    sync.RWMutex
	impls map[string]T
}

// New declares a feature. Feature values, not their types, identify a feature: two features may
// share a type.
func New[T any](name, description string) *Feature[T] {
	return &Feature[T]{name: name, description: description, impls: map[string]T{}}
}

// Name is the feature's name.
func (f *Feature[T]) Name() string { return f.name }

// Description says what the feature is.
func (f *Feature[T]) Description() string { return f.description }

// register adds runtime's implementation, for Register. It panics on an empty runtime name or a
// second registration for the same runtime: both are programming mistakes.
func (f *Feature[T]) register(runtime string, impl T) {
	if runtime == "" {
		panic(fmt.Sprintf("features: %s: register with an empty runtime name", f.name))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.impls[runtime]; dup {
		panic(fmt.Sprintf("features: %s: runtime %q registered twice", f.name, runtime))
	}
	f.impls[runtime] = impl
}

// IsAvailable reports whether runtime registered an implementation.
func (f *Feature[T]) IsAvailable(runtime string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.impls[runtime]
	return ok
}

// Lookup returns runtime's implementation, if it registered one: for code that needs one runtime's
// implementation and handles its absence itself.
func (f *Feature[T]) Lookup(runtime string) (T, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	impl, ok := f.impls[runtime]
	return impl, ok
}

// Get returns runtime's implementation, resolved through IfAvailable: for a runtime without one,
// an error wrapping ErrUnavailable that says how to get a binary that has it.
func (f *Feature[T]) Get(runtime string) (T, error) {
	var impl T
	err := f.IfAvailable(func(_ string, i T) error {
		impl = i
		return nil
	}, runtime)
	return impl, err
}

// Names lists the runtimes that registered an implementation, sorted.
func (f *Feature[T]) Names() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	names := make([]string, 0, len(f.impls))
	for name := range f.impls {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// IfAvailable calls do for each implementation, in sorted runtime order, or only for the runtimes
// named in filter. Errors from do are joined; a runtime in filter without an implementation adds an
// error wrapping ErrUnavailable. A panic inside do is returned as an error naming the runtime.
func (f *Feature[T]) IfAvailable(do func(runtime string, impl T) error, filter ...string) error {
	f.mu.RLock()
	selected := make(map[string]T, len(f.impls))
	var failed []error
	if len(filter) == 0 {
		for name, impl := range f.impls {
			selected[name] = impl
		}
	} else {
		for _, name := range filter {
			impl, ok := f.impls[name]
			if !ok {
				failed = append(failed, f.unavailable(name))
				continue
			}
			selected[name] = impl
		}
	}
	f.mu.RUnlock()

	names := make([]string, 0, len(selected))
	for name := range selected {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := callSafely(name, f.name, do, selected[name]); err != nil {
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

func (f *Feature[T]) unavailable(runtime string) error {
	if err := CheckKnown(runtime); err != nil {
		return err
	}
	return &NotCompiledInError{Runtime: runtime, Feature: f.name}
}

// CheckKnown refuses a runtime name that is none of KnownRuntimes, quoted in the error (a request
// may carry any bytes), which wraps ErrUnavailable.
func CheckKnown(runtime string) error {
	if slices.Contains(KnownRuntimes, runtime) {
		return nil
	}
	return fmt.Errorf("unknown runtime %q (known: %s): %w", runtime, strings.Join(KnownRuntimes, ", "), ErrUnavailable)
}

func callSafely[T any](runtime, feature string, do func(string, T) error, impl T) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("runtime %s panicked in %s: %v", runtime, feature, r)
		}
	}()
	return do(runtime, impl)
}

// NotCompiledInError says that a known runtime is not part of this binary and how to build one that
// has it.
type NotCompiledInError struct {
	Runtime string
	Feature string
}

// Error implements error.
func (e *NotCompiledInError) Error() string {
	return fmt.Sprintf("the %s runtime is not compiled into this cedana binary (%s); "+
		"rebuild without -tags custom, or with -tags custom,%s", e.Runtime, e.Feature, BuildTag(e.Runtime))
}

// Absence says in a few words why a known runtime is missing from this binary: for the CLI's help
// and the features table.
func Absence(runtime string) string {
	return "not compiled in: add build tag " + BuildTag(runtime)
}

// Unwrap makes errors.Is(err, ErrUnavailable) hold.
func (e *NotCompiledInError) Unwrap() error { return ErrUnavailable }

// BuildTag is the build tag that adds runtime to a custom build.
func BuildTag(runtime string) string { return "runtimes." + runtime }
