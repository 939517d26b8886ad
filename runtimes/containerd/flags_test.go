package containerd

import (
	"os"
	"testing"

	"github.com/alecthomas/kong"

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

func TestDumpCmdFillDumpAndCommit(t *testing.T) {
	tests := []struct {
		name        string
		cmd         DumpCmd
		wantErr     string
		wantLeave   bool
		wantCommit  string
		wantRootfsO bool
	}{
		{name: "no image: nothing to commit", cmd: DumpCmd{ID: "c"}},
		{name: "image with a checkpoint", cmd: DumpCmd{ID: "c", Image: "ref"}, wantCommit: "ref"},
		{name: "rootfs only leaves the container running", cmd: DumpCmd{ID: "c", Image: "ref", RootfsOnly: true}, wantLeave: true, wantCommit: "ref", wantRootfsO: true},
		{name: "rootfs only has no checkpoint for --rootfs", cmd: DumpCmd{ID: "c", Image: "ref", RootfsOnly: true, Rootfs: true}, wantErr: "drop --rootfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &daemonv1.DumpRequest{Criu: &daemonv1.CriuOptions{}}
			require.NoError(t, tt.cmd.FillDump(req))
			assert.Equal(t, tt.cmd.Image, req.Image)
			assert.Equal(t, tt.cmd.RootfsOnly, req.RootfsOnly)
			err := Commit(req)
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

// TestCommitJobDetails: a `dump job --image` request carries the job's details and no CRIU
// options of its own yet; Commit adds to them without losing the container.
func TestCommitJobDetails(t *testing.T) {
	req := &daemonv1.DumpRequest{Image: "ref", RootfsOnly: true, Details: &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: "job", Namespace: "ns"}}}
	require.NoError(t, Commit(req))
	assert.Equal(t, "job", req.Details.Containerd.Id)
	assert.Equal(t, "ns", req.Details.Containerd.Namespace)
	assert.Equal(t, "ref", req.Details.Containerd.CommitImage)
	assert.True(t, req.Criu.LeaveRunning)

	req = &daemonv1.DumpRequest{Image: "ref"}
	require.NoError(t, Commit(req))
	assert.Equal(t, "ref", req.Details.Containerd.CommitImage)
}

// TestTargetEnv: CONTAINERD_ADDRESS and CONTAINERD_NAMESPACE, which ctr and Cedana read, give the
// defaults of --containerd-address and -n; the flags win over them.
func TestTargetEnv(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		args          []string
		wantAddr      string
		wantNamespace string
	}{
		{name: "defaults", args: []string{"c"}, wantAddr: DefaultAddress, wantNamespace: DefaultNamespace},
		{name: "from the environment", env: map[string]string{"CONTAINERD_ADDRESS": "/x.sock", "CONTAINERD_NAMESPACE": "k8s.io"}, args: []string{"c"}, wantAddr: "/x.sock", wantNamespace: "k8s.io"},
		{name: "empty in the environment: the daemon's defaults (withDefaults)", env: map[string]string{"CONTAINERD_ADDRESS": "", "CONTAINERD_NAMESPACE": ""}, args: []string{"c"}},
		{name: "flags win", env: map[string]string{"CONTAINERD_ADDRESS": "/x.sock", "CONTAINERD_NAMESPACE": "k8s.io"}, args: []string{"c", "--containerd-address", "/y.sock", "-n", "ns"}, wantAddr: "/y.sock", wantNamespace: "ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"CONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE"} {
				t.Setenv(k, "") // restored when the test ends
				require.NoError(t, os.Unsetenv(k))
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var cmd ManageCmd
			parser, err := kong.New(&cmd)
			require.NoError(t, err)
			_, err = parser.Parse(tt.args)
			require.NoError(t, err)
			assert.Equal(t, tt.wantAddr, cmd.Address)
			assert.Equal(t, tt.wantNamespace, cmd.Namespace)
		})
	}
}
