package criu

import (
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func TestStreamArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  rpc.CriuReqType
		opts *rpc.CriuOpts
		want []string // nil: refused with ErrNoFlag
	}{
		{
			name: "dump", typ: rpc.CriuReqType_DUMP,
			opts: &rpc.CriuOpts{Pid: proto.Int32(42), LeaveRunning: proto.Bool(true)},
			want: []string{"dump", "--stream", "-D", "/img", "-t", "42", "--leave-running"},
		},
		{
			name: "restore with inherited files", typ: rpc.CriuReqType_RESTORE,
			opts: &rpc.CriuOpts{RstSibling: proto.Bool(true), InheritFd: []*rpc.InheritFd{
				{Key: proto.String("var/log/j.log"), Fd: proto.Int32(ExtraFileFD(0))},
				{Key: proto.String("var/log/j.stdin"), Fd: proto.Int32(ExtraFileFD(1))},
			}},
			want: []string{
				"restore", "--stream", "-D", "/img", "--restore-detached", "--restore-sibling",
				"--inherit-fd", "fd[4]:var/log/j.log", "--inherit-fd", "fd[5]:var/log/j.stdin",
			},
		},
		{
			name: "an option without a flag", typ: rpc.CriuReqType_DUMP,
			opts: &rpc.CriuOpts{Pid: proto.Int32(42), OrphanPtsMaster: proto.Bool(true)},
		},
		{
			name: "an option turned off", typ: rpc.CriuReqType_DUMP,
			opts: &rpc.CriuOpts{Pid: proto.Int32(42), OrphanPtsMaster: proto.Bool(false)},
			want: []string{"dump", "--stream", "-D", "/img", "-t", "42"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, err := StreamArgs(tc.typ, tc.opts, "/img")
			if tc.want == nil {
				require.ErrorIs(t, err, ErrNoFlag)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, args)
		})
	}
}
