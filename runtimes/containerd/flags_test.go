package containerd

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

func TestRunCmdFillRun(t *testing.T) {
	tests := []struct {
		name    string
		cmd     RunCmd
		wantErr string
		want    *daemonv1.ContainerdDetails
	}{
		{
			name: "args and env kept (the CLI drops the -- separator)", cmd: RunCmd{Image: "img", Args: []string{"sh", "-c", "exit 3"}, Env: []string{"A=1", "B="}, Snapshotter: "native"},
			want: &daemonv1.ContainerdDetails{Image: "img", Args: []string{"sh", "-c", "exit 3"}, Env: []string{"A=1", "B="}, Snapshotter: "native"},
		},
		{name: "no ID: the daemon uses the JID", cmd: RunCmd{Image: "img"}, want: &daemonv1.ContainerdDetails{Image: "img"}},
		{name: "env without =", cmd: RunCmd{Image: "img", Env: []string{"A"}}, wantErr: `--env "A" is not K=V`},
		{name: "env without a name", cmd: RunCmd{Image: "img", Env: []string{"=1"}}, wantErr: `--env "=1" is not K=V`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &daemonv1.RunRequest{}
			err := tt.cmd.FillRun(req)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want.String(), req.Containerd.String())
		})
	}
}

func TestDumpCmdFillDump(t *testing.T) {
	tests := []struct {
		name        string
		cmd         DumpCmd
		wantErr     string
		wantLeave   bool
		wantCommit  string
		wantRootfsO bool
	}{
		{name: "image with a checkpoint", cmd: DumpCmd{ID: "c", Image: "ref"}, wantCommit: "ref"},
		{name: "rootfs only leaves the container running", cmd: DumpCmd{ID: "c", Image: "ref", RootfsOnly: true}, wantLeave: true, wantCommit: "ref", wantRootfsO: true},
		{name: "rootfs only needs an image", cmd: DumpCmd{ID: "c", RootfsOnly: true}, wantErr: "--image REF"},
		{name: "rootfs only has no checkpoint for --rootfs", cmd: DumpCmd{ID: "c", Image: "ref", RootfsOnly: true, Rootfs: true}, wantErr: "drop --rootfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &daemonv1.DumpRequest{Criu: &daemonv1.CriuOptions{}}
			err := tt.cmd.FillDump(req)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantLeave, req.Criu.LeaveRunning)
			assert.Equal(t, tt.wantCommit, req.Details.Containerd.CommitImage)
			assert.Equal(t, tt.wantRootfsO, req.Details.Containerd.RootfsOnly)
		})
	}
}
