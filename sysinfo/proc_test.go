package sysinfo

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		line string
		want ProcStat
		err  bool
	}{
		{"plain", "42 (sleep) S 1 42 42 0 -1 4194560", ProcStat{PID: 42, Comm: "sleep", State: 'S', PPID: 1, PGID: 42, SID: 42}, false},
		{"spaces and parens in comm", "7 (a (b) c) R 3 4 5 34816 1", ProcStat{PID: 7, Comm: "a (b) c", State: 'R', PPID: 3, PGID: 4, SID: 5, TTY: 34816}, false},
		{"zombie", "9 (x) Z 1 9 9 0", ProcStat{PID: 9, Comm: "x", State: 'Z', PPID: 1, PGID: 9, SID: 9}, false},
		{"truncated", "9 (x) Z 1", ProcStat{}, true},
		{"garbage", "hello", ProcStat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.line)
			if tt.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSelf(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), st.PID)
	assert.Equal(t, os.Getppid(), st.PPID)
	assert.NotZero(t, st.StartTime)
	args, err := Cmdline(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, os.Args, args)
	assert.Equal(t, os.Getpid(), Tree(os.Getpid())[0])
	assert.NotEmpty(t, Kernel())
}
