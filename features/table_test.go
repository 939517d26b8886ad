package features_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/features"
)

func TestKnownRuntimes(t *testing.T) {
	assert.Equal(t, []string{features.Process, features.Runc, features.Containerd}, features.KnownRuntimes)
}

func TestTableNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range features.Table() {
		require.NotNil(t, f)
		assert.NotEmpty(t, f.Name())
		assert.NotEmpty(t, f.Description())
		assert.False(t, seen[f.Name()], "feature %s appears twice", f.Name())
		seen[f.Name()] = true
	}
}

func TestList(t *testing.T) {
	table := features.Table()
	resp := features.List()
	require.NotNil(t, resp)

	assert.Equal(t, features.KnownRuntimes, resp.KnownRuntimes)
	resp.KnownRuntimes[0] = "mutated"
	assert.Equal(t, features.Process, features.KnownRuntimes[0], "List copies KnownRuntimes")

	require.Len(t, resp.Features, len(table))
	for i, f := range table {
		got := resp.Features[i]
		assert.Equal(t, f.Name(), got.Name, "feature %d", i)
		assert.Equal(t, f.Description(), got.Description, "feature %d", i)
		if len(f.Names()) == 0 {
			assert.Empty(t, got.Runtimes, "feature %s", f.Name())
		} else {
			assert.Equal(t, f.Names(), got.Runtimes, "feature %s", f.Name())
		}
	}
}

// TestOnlyPodDumperUnavailable: without a runtime that dumps pods (this test binary has none),
// the error says how to get one and wraps ErrUnavailable.
func TestOnlyPodDumperUnavailable(t *testing.T) {
	_, impl, err := features.OnlyPodDumper()
	require.ErrorIs(t, err, features.ErrUnavailable)
	assert.Nil(t, impl)
	assert.Contains(t, err.Error(), "rebuild without -tags custom")
}
