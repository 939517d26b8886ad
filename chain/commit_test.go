package chain_test

import (
	"context"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// committer is a runtime of this test only that can commit an image: its Committer records the
// image in the request's name.
const committer = "chain-commit-test"

func init() {
	features.Register(features.Runtime{
		Name:     committer,
		BuildTag: features.BuildTag(committer),
		Dump: features.Dump{
			Command: features.Subcommand(committer, "", &fakeCmd{}),
			Handler: func(context.Context, *adapters.Env, adapters.State, *daemonv1.DumpRequest, *daemonv1.DumpResponse) (adapters.Dumped, error) {
				return false, nil
			},
			Commit: func(req *daemonv1.DumpRequest) error { req.Name = "committed " + req.Image; return nil },
		},
		Restore: features.Restore{Command: features.Subcommand(committer, "", &fakeCmd{}), Handler: func(context.Context, *adapters.Env, adapters.State, *daemonv1.RestoreRequest, *daemonv1.RestoreResponse) error {
			return nil
		}},
		Health: func(context.Context) (string, error) { return "", nil },
	})
}

func TestCommitImage(t *testing.T) {
	tests := []struct {
		name     string
		req      *daemonv1.DumpRequest
		wantErr  string
		wantName string
	}{
		{name: "no image: any runtime", req: &daemonv1.DumpRequest{Type: fake}},
		{name: "a runtime that commits", req: &daemonv1.DumpRequest{Type: committer, Image: "ref"}, wantName: "committed ref"},
		{name: "rootfs only too", req: &daemonv1.DumpRequest{Type: committer, Image: "ref", RootfsOnly: true}, wantName: "committed ref"},
		{name: "rootfs only without an image", req: &daemonv1.DumpRequest{Type: committer, RootfsOnly: true}, wantErr: "give it a name with --image REF"},
		{
			name: "a runtime that cannot", req: &daemonv1.DumpRequest{Type: fake, Image: "ref"},
			wantErr: "chain-test workloads have no image to commit (only " + committer + " can",
		},
		{
			name: "a job of a runtime that cannot", req: &daemonv1.DumpRequest{Type: fake, Jid: "j1", RootfsOnly: true, Image: "ref"},
			wantErr: "job j1 is a chain-test job, and chain-test workloads have no image to commit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached := false
			h := chain.CommitImage(func(context.Context, *adapters.Env, adapters.State, *daemonv1.DumpRequest, *daemonv1.DumpResponse) (adapters.Dumped, error) {
				reached = true
				return false, nil
			})
			_, err := h(context.Background(), nil, adapters.State{}, tt.req, &daemonv1.DumpResponse{})
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.True(t, errdefs.IsInvalidArgument(err), "invalid argument: %v", err)
				assert.False(t, reached, "refused before the workload is touched")
				return
			}
			require.NoError(t, err)
			assert.True(t, reached)
			assert.Equal(t, tt.wantName, tt.req.Name)
		})
	}
}
