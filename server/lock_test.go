package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
	"github.com/cedana/cedana/store"
)

// TestLockDump: a second dump of the same job, PID or container fails fast while the first runs;
// dumps of different workloads do not wait for each other.
func TestLockDump(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	m := jobs.New(st, dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	s := &service{jobs: m}

	tests := []struct {
		name       string
		req, other *daemonv1.DumpRequest
	}{
		{"job", &daemonv1.DumpRequest{Jid: "a"}, &daemonv1.DumpRequest{Jid: "b"}},
		{"process", &daemonv1.DumpRequest{Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 10}}},
			&daemonv1.DumpRequest{Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 11}}}},
		{"runc", &daemonv1.DumpRequest{Details: &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: "c", Root: "/run/runc"}}},
			&daemonv1.DumpRequest{Details: &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: "d", Root: "/run/runc"}}}},
		{"containerd", &daemonv1.DumpRequest{Details: &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: "c", Namespace: "k8s.io"}}},
			&daemonv1.DumpRequest{Details: &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: "c", Namespace: "default"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unlock, err := s.lockDump(tt.req)
			require.NoError(t, err)
			_, err = s.lockDump(tt.req)
			assert.ErrorIs(t, err, adapters.ErrBusy, "the same workload is busy")
			unlockOther, err := s.lockDump(tt.other)
			require.NoError(t, err, "another workload is not")
			unlockOther()
			unlock()
			unlock, err = s.lockDump(tt.req)
			require.NoError(t, err, "free again")
			unlock()
		})
	}
}
