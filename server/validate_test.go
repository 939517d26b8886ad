package server

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"google.golang.org/protobuf/types/known/durationpb"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

func TestValidateRequests(t *testing.T) {
	long := strings.Repeat("x", 1<<16)
	tests := []struct {
		name string
		err  error
		msg  string // "" when valid
	}{
		{"dump", validateDump(&daemonv1.DumpRequest{Type: "process", Jid: "j1", OperationId: "op-1"}), ""},
		{"dump without job", validateDump(&daemonv1.DumpRequest{Type: "process"}), ""},
		{"dump bad job", validateDump(&daemonv1.DumpRequest{Jid: "../x"}), `"../x"`},
		{"dump NUL in external", validateDump(&daemonv1.DumpRequest{Criu: &daemonv1.CriuOptions{External: []string{"a", "b\x00"}}}), "criu.external[1] contains a NUL byte"},
		{"dump NUL in details", validateDump(&daemonv1.DumpRequest{Details: &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: "\x00"}}}), "details.runc.id contains a NUL byte"},
		{"dump long operation", validateDump(&daemonv1.DumpRequest{OperationId: long}), "65536 bytes is too long"},
		{"dump control in operation", validateDump(&daemonv1.DumpRequest{OperationId: "a\nb"}), "control character"},
		{"restore", validateRestore(&daemonv1.RestoreRequest{Path: "/ck", Jid: "j1", OperationId: "op"}), ""},
		{"restore NUL path", validateRestore(&daemonv1.RestoreRequest{Path: "/c\x00k"}), "path contains a NUL byte"},
		{"restore as a new job", validateRestore(&daemonv1.RestoreRequest{Path: "/ck", NewJob: true, Log: "/out.log"}), ""},
		{"restore a job as a new job", validateRestore(&daemonv1.RestoreRequest{Path: "/ck", Jid: "j1", NewJob: true}), "new_job is for a restore by path"},
		{"restore log without a new job", validateRestore(&daemonv1.RestoreRequest{Path: "/ck", Log: "/out.log"}), "log is a new job's"},
		{"restore relative log", validateRestore(&daemonv1.RestoreRequest{Path: "/ck", NewJob: true, Log: "out.log"}), "not an absolute path"},
		{"run", validateRun(&daemonv1.RunRequest{Type: "process", Log: "/var/log/x.log", Process: &daemonv1.ProcessRun{Path: "sleep"}}), ""},
		{"run no type", validateRun(&daemonv1.RunRequest{}), "names no runtime"},
		{"run relative log", validateRun(&daemonv1.RunRequest{Type: "process", Log: "x.log"}), "not an absolute path"},
		{"run NUL in env", validateRun(&daemonv1.RunRequest{Type: "process", Process: &daemonv1.ProcessRun{Env: []string{"A=\x00"}}}), "process.env[0]"},
		{"run bad job", validateRun(&daemonv1.RunRequest{Type: "process", Jid: ".j"}), `".j"`},
		{"manage", validateManage(&daemonv1.ManageRequest{Type: "process", Jid: "j"}), ""},
		{"manage no type", validateManage(&daemonv1.ManageRequest{}), "names no runtime"},
		{"get job", validateGetJob(&daemonv1.GetJobRequest{Jid: "j"}), ""},
		{"get job empty", validateGetJob(&daemonv1.GetJobRequest{}), "no job ID"},
		{"get job long", validateGetJob(&daemonv1.GetJobRequest{Jid: long}), "too long"},
		{"kill", validateKillJob(&daemonv1.KillJobRequest{Jids: []string{"a", "b"}, Signal: 15}), ""},
		{"kill default signal", validateKillJob(&daemonv1.KillJobRequest{Jids: []string{"a"}}), ""},
		{"kill no job", validateKillJob(&daemonv1.KillJobRequest{}), "no job to kill"},
		{"kill bad signal", validateKillJob(&daemonv1.KillJobRequest{Jids: []string{"a"}, Signal: 65}), "signal 65 is out of range"},
		{"kill negative signal", validateKillJob(&daemonv1.KillJobRequest{Jids: []string{"a"}, Signal: -1}), "signal -1"},
		{"kill empty JID", validateKillJob(&daemonv1.KillJobRequest{Jids: []string{"a", ""}}), "no job ID"},
		{"delete", validateDeleteJob(&daemonv1.DeleteJobRequest{Jids: []string{"a"}}), ""},
		{"delete no job", validateDeleteJob(&daemonv1.DeleteJobRequest{Force: true}), "no job to delete"},
		{"attach", validateAttach(&daemonv1.AttachRequest{Jid: "a", TailLines: 5}), ""},
		{"attach negative tail", validateAttach(&daemonv1.AttachRequest{Jid: "a", TailLines: -1}), "tail_lines -1"},
		{"write stdin", validateWriteStdin(&daemonv1.WriteStdinRequest{Jid: "a", Data: []byte{0}}), ""},
		{"write stdin no job", validateWriteStdin(&daemonv1.WriteStdinRequest{}), "no job ID"},
		{"watch", validateWatchProgress(&daemonv1.WatchProgressRequest{OperationId: "op"}), ""},
		{"watch nothing", validateWatchProgress(&daemonv1.WatchProgressRequest{}), "no operation ID"},
		{"list checkpoints", validateListCheckpoints(&daemonv1.ListCheckpointsRequest{}), ""},
		{"list checkpoints bad job", validateListCheckpoints(&daemonv1.ListCheckpointsRequest{Jid: "a b"}), `"a b"`},
		{"get checkpoint", validateGetCheckpoint(&daemonv1.GetCheckpointRequest{Id: "ck-9c1e04b7a2"}), ""},
		{"get checkpoint empty", validateGetCheckpoint(&daemonv1.GetCheckpointRequest{}), "no checkpoint ID"},
		{"get checkpoint slash", validateGetCheckpoint(&daemonv1.GetCheckpointRequest{Id: "ck/1"}), `holds '/'`},
		{"delete checkpoint long", validateDeleteCheckpoint(&daemonv1.DeleteCheckpointRequest{Id: long}), "too long"},
		{"NUL in a map key", noNUL(&daemonv1.Stats{Phases: map[string]*durationpb.Duration{"a\x00": durationpb.New(1)}}), "phases contains a NUL byte"},
		{"no NUL in a map", noNUL(&daemonv1.Stats{Phases: map[string]*durationpb.Duration{"a": durationpb.New(1)}}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.msg == "" {
				assert.NoError(t, tt.err)
				return
			}
			assert.ErrorIs(t, tt.err, errdefs.ErrInvalidArgument)
			assert.ErrorContains(t, tt.err, tt.msg)
			assert.Less(t, len(tt.err.Error()), 300, "a long argument is not quoted back whole")
		})
	}
}

// TestHandlersValidateFirst sends every RPC that takes arguments a request its validate function
// refuses: the daemon answers invalid_argument before it looks anything up.
func TestHandlersValidateFirst(t *testing.T) {
	d := startTestDaemon(t, testConfig(t))
	c := d.client
	ctx := context.Background()
	calls := map[string]func() error{
		"Dump":    func() error { _, err := c.Dump(ctx, &daemonv1.DumpRequest{Type: "process", Jid: "../x"}); return err },
		"Restore": func() error { _, err := c.Restore(ctx, &daemonv1.RestoreRequest{Jid: "a b"}); return err },
		"Run":     func() error { _, err := c.Run(ctx, &daemonv1.RunRequest{Type: "process", Log: "rel.log"}); return err },
		"Manage":  func() error { _, err := c.Manage(ctx, &daemonv1.ManageRequest{Type: "process", Jid: ".x"}); return err },
		"GetJob":  func() error { _, err := c.GetJob(ctx, &daemonv1.GetJobRequest{}); return err },
		"KillJob": func() error {
			_, err := c.KillJob(ctx, &daemonv1.KillJobRequest{Jids: []string{"j"}, Signal: 99})
			return err
		},
		"DeleteJob":  func() error { _, err := c.DeleteJob(ctx, &daemonv1.DeleteJobRequest{}); return err },
		"WriteStdin": func() error { _, err := c.WriteStdin(ctx, &daemonv1.WriteStdinRequest{}); return err },
		"ListCheckpoints": func() error {
			_, err := c.ListCheckpoints(ctx, &daemonv1.ListCheckpointsRequest{Jid: "a/b"})
			return err
		},
		"GetCheckpoint": func() error { _, err := c.GetCheckpoint(ctx, &daemonv1.GetCheckpointRequest{}); return err },
		"DeleteCheckpoint": func() error {
			_, err := c.DeleteCheckpoint(ctx, &daemonv1.DeleteCheckpointRequest{Id: "../ck"})
			return err
		},
		"Attach":        func() error { return streamErr(c.Attach(ctx, &daemonv1.AttachRequest{Jid: "j", TailLines: -1})) },
		"WatchProgress": func() error { return streamErr(c.WatchProgress(ctx, &daemonv1.WatchProgressRequest{})) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(call()))
		})
	}
}

// streamErr is the error a server stream ends with.
func streamErr[T any](stream *connect.ServerStreamForClient[T], err error) error {
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
	}
	return stream.Err()
}
