package chain_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// fake is a runtime of this test only: its middleware and handlers record what they see.
const fake = "chain-test"

// seen records, in order, what the fake runtime's pieces saw.
var seen []string

// fakeCmd is the fake runtime's dump and restore subcommand.
type fakeCmd struct{}

func (fakeCmd) FillDump(*daemonv1.DumpRequest) error       { return nil }
func (fakeCmd) FillRestore(*daemonv1.RestoreRequest) error { return nil }

var (
	_ features.DumpCommand    = (*fakeCmd)(nil)
	_ features.RestoreCommand = (*fakeCmd)(nil)
)

func init() {
	features.Register(features.Runtime{
		Name:     fake,
		BuildTag: features.BuildTag(fake),
		Dump: features.Dump{
			Command: features.Subcommand(fake, "", &fakeCmd{}),
			Middleware: adapters.Middleware[adapters.DumpHandler]{
				func(next adapters.DumpHandler) adapters.DumpHandler {
					return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
						seen = append(seen, "dump middleware, images in "+filepath.Base(filepath.Dir(st.ImageDir)))
						return next(ctx, env, st, req, resp)
					}
				},
			},
			Handler: func(_ context.Context, _ *adapters.Env, st adapters.State, _ *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (adapters.Dumped, error) {
				seen = append(seen, "dump handler")
				resp.Checkpoint.Pid = 42
				return true, os.WriteFile(filepath.Join(st.ImageDir, "core-42.img"), []byte("core"), 0o600)
			},
		},
		Restore: features.Restore{
			Command: features.Subcommand(fake, "", &fakeCmd{}),
			Middleware: adapters.Middleware[adapters.RestoreHandler]{
				func(next adapters.RestoreHandler) adapters.RestoreHandler {
					return func(ctx context.Context, env *adapters.Env, st adapters.State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
						seen = append(seen, "restore middleware of checkpoint "+resp.GetCheckpoint().GetName())
						return next(ctx, env, st, req, resp)
					}
				},
			},
			Handler: func(_ context.Context, _ *adapters.Env, _ adapters.State, _ *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
				seen = append(seen, "restore handler")
				resp.Pid = resp.GetCheckpoint().GetPid()
				return nil
			},
		},
		Health: func(context.Context) (string, error) { return "a fake", nil },
	})
}

func state() adapters.State {
	return adapters.State{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestChains: a dump goes through the common adapters (defaults, its directory, checkpoint.json)
// around the runtime's middleware and handler; the restore of what it wrote finds the runtime in
// the checkpoint's metadata and runs its middleware and handler after the common adapters.
func TestChains(t *testing.T) {
	seen = nil
	env := &adapters.Env{CheckpointDir: filepath.Join(t.TempDir(), "checkpoints")}
	dump, err := chain.Dump(fake)
	require.NoError(t, err)
	dresp := &daemonv1.DumpResponse{}
	dumped, err := dump(context.Background(), env, state(), &daemonv1.DumpRequest{Type: fake, Name: "ck"}, dresp)
	require.NoError(t, err)
	assert.True(t, bool(dumped))
	assert.Equal(t, filepath.Join(env.CheckpointDir, "ck"), dresp.Path)
	ck, err := checkpoint.Read(dresp.Path)
	require.NoError(t, err, "the common adapters wrote checkpoint.json")
	assert.Equal(t, int32(42), ck.Pid)

	rresp := &daemonv1.RestoreResponse{}
	require.NoError(t, chain.Restore()(context.Background(), env, state(), &daemonv1.RestoreRequest{Path: dresp.Path}, rresp))
	assert.Equal(t, int32(42), rresp.Pid)
	assert.NotNil(t, rresp.Stats.GetTotal(), "timed")
	assert.Equal(t, []string{
		"dump middleware, images in checkpoints",
		"dump handler",
		"restore middleware of checkpoint ck",
		"restore handler",
	}, seen)
}

// TestNoSuchRuntime: a dump without a runtime is a bad request; one of a runtime this binary
// lacks, and a restore of a checkpoint made by one, are not implemented here.
func TestNoSuchRuntime(t *testing.T) {
	_, err := chain.Dump("")
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)

	_, err = chain.Dump("nosuch")
	assert.ErrorIs(t, err, features.ErrUnavailable)
	assert.True(t, errdefs.IsNotImplemented(err))

	dir := t.TempDir()
	require.NoError(t, checkpoint.Write(dir, &daemonv1.Checkpoint{Name: "ck", Type: "nosuch"}))
	err = chain.Restore()(context.Background(), &adapters.Env{}, state(), &daemonv1.RestoreRequest{Path: dir}, &daemonv1.RestoreResponse{})
	assert.ErrorIs(t, err, features.ErrUnavailable)
}

// TestChecksTouchNothing: the checks a chain starts with refuse a bad request on their own.
func TestChecksTouchNothing(t *testing.T) {
	end := func(context.Context, *adapters.Env, adapters.State, *daemonv1.DumpRequest, *daemonv1.DumpResponse) (adapters.Dumped, error) {
		t.Error("the checks let a bad request through")
		return false, nil
	}
	_, err := adapters.DumpHandler(end).With(chain.DumpChecks()...)(context.Background(), &adapters.Env{}, state(),
		&daemonv1.DumpRequest{Type: fake, Dir: "relative"}, &daemonv1.DumpResponse{})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)

	rend := func(context.Context, *adapters.Env, adapters.State, *daemonv1.RestoreRequest, *daemonv1.RestoreResponse) error {
		t.Error("the checks let a bad request through")
		return nil
	}
	err = adapters.RestoreHandler(rend).With(chain.RestoreChecks()...)(context.Background(), &adapters.Env{}, state(),
		&daemonv1.RestoreRequest{}, &daemonv1.RestoreResponse{})
	assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
}

// TestDeclaredRuntimeIsListed: a runtime cedana does not know of, once declared, is listed after
// the known ones, for the CLI's subcommands, the features table and the health report.
func TestDeclaredRuntimeIsListed(t *testing.T) {
	assert.Equal(t, append(slices.Clone(features.KnownRuntimes), committer, fake), features.Runtimes())
	assert.Equal(t, append(slices.Clone(features.KnownRuntimes), committer, fake), features.List().KnownRuntimes)
}
