package features_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/features"
)

// newFeature declares a fresh feature so that tests never register into the global table.
func newFeature(t *testing.T, runtimes ...string) *features.Feature[string] {
	t.Helper()
	f := features.New[string]("test-feature", "a feature for tests")
	for _, rt := range runtimes {
		f.Register(rt, "impl-"+rt)
	}
	return f
}

func TestNewNameDescription(t *testing.T) {
	f := features.New[int]("my-feature", "does things")
	assert.Equal(t, "my-feature", f.Name())
	assert.Equal(t, "does things", f.Description())
	assert.Empty(t, f.Names())
}

func TestRegisterPanics(t *testing.T) {
	tests := []struct {
		name     string
		register func(f *features.Feature[string])
		contains string
	}{
		{
			name:     "empty runtime name",
			register: func(f *features.Feature[string]) { f.Register("", "x") },
			contains: "empty runtime name",
		},
		{
			name: "duplicate runtime",
			register: func(f *features.Feature[string]) {
				f.Register("process", "first")
				f.Register("process", "second")
			},
			contains: `"process" registered twice`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFeature(t)
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				tt.register(f)
			}()
			require.NotNil(t, recovered, "Register must panic")
			msg := fmt.Sprint(recovered)
			assert.Contains(t, msg, tt.contains)
			assert.Contains(t, msg, "test-feature", "the panic names the feature")
		})
	}
}

func TestRegisterDuplicateKeepsFirst(t *testing.T) {
	f := newFeature(t, "process")
	assert.Panics(t, func() { f.Register("process", "second") })
	var got string
	require.NoError(t, f.IfAvailable(func(_ string, impl string) error {
		got = impl
		return nil
	}))
	assert.Equal(t, "impl-process", got)
}

func TestIsAvailableAndNames(t *testing.T) {
	f := newFeature(t, "runc", "containerd", "process", "zeta", "alpha")

	assert.Equal(t, []string{"alpha", "containerd", "process", "runc", "zeta"}, f.Names())
	assert.True(t, sort.StringsAreSorted(f.Names()))

	tests := []struct {
		runtime string
		want    bool
	}{
		{"runc", true},
		{"containerd", true},
		{"process", true},
		{"alpha", true},
		{"", false},
		{"missing", false},
		{"RUNC", false},
	}
	for _, tt := range tests {
		t.Run(tt.runtime, func(t *testing.T) {
			assert.Equal(t, tt.want, f.IsAvailable(tt.runtime))
		})
	}
}

func TestNamesEmpty(t *testing.T) {
	f := newFeature(t)
	names := f.Names()
	assert.NotNil(t, names)
	assert.Empty(t, names)
}

func TestIfAvailableSortedOrder(t *testing.T) {
	orders := [][]string{
		{"runc", "process", "containerd"},
		{"containerd", "process", "runc"},
		{"process", "containerd", "runc"},
		{"b", "c", "a", "runc"},
	}
	for _, order := range orders {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			f := newFeature(t, order...)
			var visited []string
			err := f.IfAvailable(func(rt string, impl string) error {
				assert.Equal(t, "impl-"+rt, impl, "each runtime gets its own implementation")
				visited = append(visited, rt)
				return nil
			})
			require.NoError(t, err)
			want := append([]string(nil), order...)
			sort.Strings(want)
			assert.Equal(t, want, visited)
		})
	}
}

func TestIfAvailableNoImplementations(t *testing.T) {
	f := newFeature(t)
	called := false
	err := f.IfAvailable(func(string, string) error {
		called = true
		return nil
	})
	assert.NoError(t, err)
	assert.False(t, called)
}

func TestIfAvailableFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter []string
		want   []string
	}{
		{"one", []string{"runc"}, []string{"runc"}},
		{"two in reverse order are visited sorted", []string{"runc", "containerd"}, []string{"containerd", "runc"}},
		{"duplicates visited once", []string{"process", "process"}, []string{"process"}},
		{"all", []string{"process", "runc", "containerd"}, []string{"containerd", "process", "runc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFeature(t, "process", "runc", "containerd")
			var visited []string
			err := f.IfAvailable(func(rt string, _ string) error {
				visited = append(visited, rt)
				return nil
			}, tt.filter...)
			require.NoError(t, err)
			assert.Equal(t, tt.want, visited)
		})
	}
}

func TestIfAvailableJoinsErrors(t *testing.T) {
	errProcess := errors.New("process failed")
	errRunc := errors.New("runc failed")
	f := newFeature(t, "process", "runc", "containerd")

	var visited []string
	err := f.IfAvailable(func(rt string, _ string) error {
		visited = append(visited, rt)
		switch rt {
		case "process":
			return errProcess
		case "runc":
			return fmt.Errorf("wrapped: %w", errRunc)
		}
		return nil
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, errProcess)
	assert.ErrorIs(t, err, errRunc)
	assert.NotErrorIs(t, err, features.ErrUnavailable)
	assert.Equal(t, []string{"containerd", "process", "runc"}, visited, "an error does not stop the other runtimes")
	assert.Contains(t, err.Error(), "process failed")
	assert.Contains(t, err.Error(), "wrapped: runc failed")
}

func TestIfAvailableKnownButNotRegistered(t *testing.T) {
	f := newFeature(t) // nothing registered: "process" is known but not compiled in
	called := false
	err := f.IfAvailable(func(string, string) error {
		called = true
		return nil
	}, features.Process)
	require.Error(t, err)
	assert.False(t, called)
	assert.ErrorIs(t, err, features.ErrUnavailable)
	assert.Contains(t, err.Error(), "runtimes.process", "the message names the build tag")
	assert.Contains(t, err.Error(), "test-feature", "the message names the feature")

	var nc *features.NotCompiledInError
	require.ErrorAs(t, err, &nc)
	assert.Equal(t, features.Process, nc.Runtime)
	assert.Equal(t, "test-feature", nc.Feature)
}

func TestIfAvailableUnknownRuntime(t *testing.T) {
	f := newFeature(t, "process")
	err := f.IfAvailable(func(string, string) error { return nil }, "no-such-runtime")
	require.Error(t, err)
	assert.ErrorIs(t, err, features.ErrUnavailable)
	assert.Contains(t, err.Error(), `"no-such-runtime"`)
	for _, known := range features.KnownRuntimes {
		assert.Contains(t, err.Error(), known, "the message lists the known runtimes")
	}
	var nc *features.NotCompiledInError
	assert.False(t, errors.As(err, &nc), "an unknown runtime is not a not-compiled-in one")
}

func TestIfAvailableFilterMixesAvailableAndUnavailable(t *testing.T) {
	errDo := errors.New("do failed")
	f := newFeature(t, "process")
	var visited []string
	err := f.IfAvailable(func(rt string, _ string) error {
		visited = append(visited, rt)
		return errDo
	}, "containerd", "process", "bogus")
	require.Error(t, err)
	assert.Equal(t, []string{"process"}, visited, "available runtimes still run")
	assert.ErrorIs(t, err, features.ErrUnavailable)
	assert.ErrorIs(t, err, errDo)
	assert.Contains(t, err.Error(), "containerd runtime is not compiled into this cedana binary")
	assert.Contains(t, err.Error(), `"bogus"`)
}

func TestIfAvailablePanicBecomesError(t *testing.T) {
	errContainerd := errors.New("containerd failed")
	f := newFeature(t, "process", "runc", "containerd")
	var visited []string
	err := f.IfAvailable(func(rt string, _ string) error {
		visited = append(visited, rt)
		switch rt {
		case "process":
			panic("boom in process")
		case "containerd":
			return errContainerd
		}
		return nil
	})
	require.Error(t, err)
	assert.Equal(t, []string{"containerd", "process", "runc"}, visited, "a panic does not stop the other runtimes")
	assert.Contains(t, err.Error(), "process")
	assert.Contains(t, err.Error(), "panicked")
	assert.Contains(t, err.Error(), "boom in process")
	assert.Contains(t, err.Error(), "test-feature")
	assert.ErrorIs(t, err, errContainerd)
}

func TestIfAvailableMayRegisterFromDo(t *testing.T) {
	// do runs without the feature's lock held.
	f := newFeature(t, "process")
	err := f.IfAvailable(func(string, string) error {
		f.Register("late", "impl-late")
		return nil
	})
	require.NoError(t, err)
	assert.True(t, f.IsAvailable("late"))
}

func TestBuildTag(t *testing.T) {
	for _, rt := range features.KnownRuntimes {
		assert.Equal(t, "runtimes."+rt, features.BuildTag(rt))
	}
}

func TestNotCompiledInError(t *testing.T) {
	err := &features.NotCompiledInError{Runtime: "process", Feature: "dump-cmd"}
	assert.ErrorIs(t, err, features.ErrUnavailable)
	assert.Contains(t, err.Error(), "process")
	assert.Contains(t, err.Error(), "dump-cmd")
	assert.Contains(t, err.Error(), "runtimes.process")

	assert.Equal(t, "not compiled in: add build tag runtimes.process", features.Absence("process"))
}

func TestLookup(t *testing.T) {
	f := newFeature(t, "process", "runc")
	tests := []struct {
		runtime string
		want    string
		ok      bool
	}{
		{"process", "impl-process", true},
		{"runc", "impl-runc", true},
		{"containerd", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.runtime, func(t *testing.T) {
			got, ok := f.Lookup(tt.runtime)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestGet(t *testing.T) {
	f := newFeature(t, "process")
	tests := []struct {
		runtime string
		want    string
		err     string
	}{
		{"process", "impl-process", ""},
		{"containerd", "", "the containerd runtime is not compiled into this cedana binary"},
		{"podman", "", `unknown runtime "podman"`},
	}
	for _, tt := range tests {
		t.Run(tt.runtime, func(t *testing.T) {
			got, err := f.Get(tt.runtime)
			assert.Equal(t, tt.want, got)
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, features.ErrUnavailable)
			assert.ErrorContains(t, err, tt.err)
		})
	}
}
