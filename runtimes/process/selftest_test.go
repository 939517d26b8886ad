package process

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/features"
)

func TestLastCount(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil: no file
		want    int
	}{
		{"no file", nil, 0},
		{"empty", ptr(""), 0},
		{"one", ptr("1\n"), 1},
		{"several", ptr("1\n2\n3\n"), 3},
		{"partial last line", ptr("1\n2\n3"), 3},
		{"garbage", ptr("x\n"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "counter")
			if tt.content != nil {
				require.NoError(t, os.WriteFile(path, []byte(*tt.content), 0o600))
			}
			assert.Equal(t, tt.want, lastCount(path))
		})
	}
}

// TestCounterHelper: the counter appends 1, 2, ... until its context ends, and refuses bad usage.
func TestCounterHelper(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- counter.Main(ctx, []string{path}, features.Stdio{}) }()
	require.Eventually(t, func() bool { return lastCount(path) >= 2 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	require.ErrorContains(t, counter.Main(context.Background(), nil, features.Stdio{}), "usage: check-counter <file>")
}

func ptr(s string) *string { return &s }
