package withcriu

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// TestOpenImagesLogLevel: CRIU logs at the configured level, at its own default (2) when the Env
// says nothing.
func TestOpenImagesLogLevel(t *testing.T) {
	tests := []struct {
		name  string
		level int32
		want  int32
	}{
		{name: "unset", level: 0, want: 2},
		{name: "errors only", level: 1, want: 1},
		{name: "every step", level: 4, want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, opts, err := openImages(t.TempDir(), "dump.log", tt.level, &daemonv1.CriuOptions{})
			require.NoError(t, err)
			defer dir.Close()
			assert.Equal(t, tt.want, opts.GetLogLevel())
			assert.Equal(t, "dump.log", opts.GetLogFile())
		})
	}
}

// TestCRIUFailureSaysHowToLogEveryStep: below level 4, the message points at criu.log_level.
func TestCRIUFailureSaysHowToLogEveryStep(t *testing.T) {
	tests := []struct {
		level int32
		hint  bool
	}{{0, true}, {2, true}, {4, false}}
	for _, tt := range tests {
		dir := t.TempDir()
		log := "(00.1) Error (criu/cr-dump.c:1): something broke\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, "dump.log"), []byte(log), 0o644))
		err := criuFailure(errors.New("criu dump failed"), &adapters.Env{CRIULogLevel: tt.level}, dir, "dump.log", "")
		assert.Contains(t, err.Error(), "something broke")
		assert.Contains(t, err.Error(), "full log: "+filepath.Join(dir, "dump.log"))
		assert.Equal(t, tt.hint, strings.Contains(err.Error(), "criu.log_level to 4"), "level %d", tt.level)
	}
}

// TestTimings: each mark is the time since the one before, the first since start.
func TestTimings(t *testing.T) {
	tm := timings{start: time.Now().Add(-time.Second)}
	tm.mark("a")
	tm.mark("b")
	require.Len(t, tm.attrs, 4)
	assert.Equal(t, []any{"a", "b"}, []any{tm.attrs[0], tm.attrs[2]})
	assert.GreaterOrEqual(t, tm.attrs[1].(time.Duration), time.Second)
	assert.Less(t, tm.attrs[3].(time.Duration), time.Second)
}
