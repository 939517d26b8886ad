package runccli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

func TestLastError(t *testing.T) {
	log := filepath.Join(t.TempDir(), "runc.log")
	require.NoError(t, os.WriteFile(log, []byte(`{"level":"info","msg":"starting"}
not json
{"level":"error","msg":"first"}
{"level":"fatal","msg":" container \"x\" does not exist \n"}
`), 0o600))
	assert.Equal(t, `container "x" does not exist`, LastError(log))
	assert.Empty(t, LastError(filepath.Join(t.TempDir(), "missing")))
}

// TestWriteError: the line is what runc itself writes, and what LastError (as containerd's shim)
// reads back, quotes and line breaks included.
func TestWriteError(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 5, time.UTC)
	tests := []struct {
		format, msg, want string
	}{
		{FormatJSON, "pod checkpoint /ck: no such checkpoint", `{"level":"error","msg":"pod checkpoint /ck: no such checkpoint","time":"2026-12-01T10:00:00.000000005Z"}` + "\n"},
		{FormatJSON, "a \"quoted\"\nline", `{"level":"error","msg":"a \"quoted\"\nline","time":"2026-12-01T10:00:00.000000005Z"}` + "\n"},
		{FormatText, "no entry", `time="2026-12-01T10:00:00.000000005Z" level=error msg="no entry"` + "\n"},
		{"", "x", `time="2026-12-01T10:00:00.000000005Z" level=error msg="x"` + "\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		require.NoError(t, WriteError(&b, tt.format, tt.msg, now))
		assert.Equal(t, tt.want, b.String())
		if tt.format == FormatJSON {
			log := filepath.Join(t.TempDir(), "log.json")
			require.NoError(t, os.WriteFile(log, append([]byte(`{"level":"error","msg":"runc's own"}`+"\n"), b.Bytes()...), 0o600))
			assert.Equal(t, tt.msg, LastError(log))
		}
	}
}

func TestRestoreFlags(t *testing.T) {
	assert.Empty(t, RestoreFlags(nil))
	assert.Equal(t, []string{"--tcp-established", "--file-locks"}, RestoreFlags(&daemonv1.CriuOptions{TcpEstablished: true, FileLocks: true, LeaveRunning: true}))
}
