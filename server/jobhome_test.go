package server

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/store"
)

func TestTakeoverCheck(t *testing.T) {
	const path = "/ck/train-1"
	withRecord := func(rec *daemonv1.JobRecord) *daemonv1.Checkpoint {
		return &daemonv1.Checkpoint{Type: "rt", Job: rec}
	}
	for _, tc := range []struct {
		name    string
		jid     string
		ck      *daemonv1.Checkpoint
		taken   bool     // this daemon already has the JID
		kind    error    // the error's kind; nil: taken on
		want    []string // in the error
		inherit []string // paths substituted
	}{
		{
			name: "no record", jid: "train", ck: &daemonv1.Checkpoint{Type: "rt"}, kind: errdefs.ErrInvalidArgument,
			want: []string{"no job train here", "carries no job record", "cedana restore rt --path " + path},
		},
		{
			name: "another job", jid: "train", ck: withRecord(&daemonv1.JobRecord{Jid: "other", Type: "rt"}), kind: errdefs.ErrInvalidArgument,
			want: []string{"is of job other, not train", "cedana restore job other --path " + path},
		},
		{
			name: "type mismatch", jid: "train", ck: withRecord(&daemonv1.JobRecord{Jid: "train", Type: "else"}), kind: errdefs.ErrInvalidArgument,
			want: []string{"made by the rt runtime", "says else"},
		},
		{
			name: "taken meanwhile", jid: "train", ck: withRecord(&daemonv1.JobRecord{Jid: "train", Type: "rt"}), taken: true,
			kind: errdefs.ErrAlreadyExists, want: []string{"job train already exists"},
		},
		{
			name: "started job", jid: "train", ck: withRecord(&daemonv1.JobRecord{Jid: "train", Type: "rt", Log: "/a/train.log", Stdin: "/a/train.stdin"}),
			inherit: []string{"/a/train.log", "/a/train.stdin"},
		},
		{name: "adopted job", jid: "train", ck: withRecord(&daemonv1.JobRecord{Jid: "train", Type: "rt"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, st := journalService(t)
			ctx := context.Background()
			if tc.taken {
				require.NoError(t, st.CreateJob(ctx, store.Job{JID: tc.jid, Type: "rt", Status: store.JobHalted}))
			}
			took := &takeover{s: s, ctx: ctx, jid: tc.jid, path: path}
			var state adapters.State
			err := took.check(tc.ck, &state)
			log := filepath.Join(s.jobs.StdinPath(tc.jid), "..", tc.jid+".log")
			if tc.kind != nil {
				require.ErrorIs(t, err, tc.kind)
				for _, w := range tc.want {
					assert.Contains(t, err.Error(), w)
				}
				assert.Empty(t, state.JobLog)
				assert.Empty(t, state.Inherit)
				took.close()
				assert.NoFileExists(t, log)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, filepath.Clean(log), state.JobLog)
			var paths []string
			for _, f := range state.Inherit {
				paths = append(paths, f.Path)
				assert.NotNil(t, f.File)
			}
			assert.Equal(t, tc.inherit, paths)
			assert.FileExists(t, state.JobLog)
			assert.True(t, s.jobs.HasStdin(tc.jid))
			took.close() // never recorded: what was made for it goes
			assert.NoFileExists(t, state.JobLog)
			assert.False(t, s.jobs.HasStdin(tc.jid))
		})
	}
}
