package server

import (
	"bytes"
	"errors"
	"testing"

	"connectrpc.com/connect"
	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

func TestValidateMigrate(t *testing.T) {
	tests := []struct {
		name string
		req  *daemonv1.MigrateRequest
		want string // "" when valid
	}{
		{"job", &daemonv1.MigrateRequest{Jid: "train", To: "10.0.0.2:8080"}, ""},
		{"workload", &daemonv1.MigrateRequest{Type: "process", To: "[::1]:8080", Compression: "lz4"}, ""},
		{"no destination", &daemonv1.MigrateRequest{Jid: "train"}, "is not a daemon's TCP address"},
		{"no port", &daemonv1.MigrateRequest{Jid: "train", To: "10.0.0.2"}, "is not a daemon's TCP address"},
		{"a socket path", &daemonv1.MigrateRequest{Jid: "train", To: "/run/cedana.sock"}, "is not a daemon's TCP address"},
		{"nothing to move", &daemonv1.MigrateRequest{To: "10.0.0.2:8080"}, "names no runtime"},
		{"no archive", &daemonv1.MigrateRequest{Jid: "train", To: "10.0.0.2:8080", Compression: "none"}, "streamed as one archive"},
		{"bad jid", &daemonv1.MigrateRequest{Jid: "a/b", To: "10.0.0.2:8080"}, "job ID"},
		{"NUL", &daemonv1.MigrateRequest{Jid: "train", To: "10.0.0.2:8080\x00"}, "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateMigrate(tt.req)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			assert.ErrorIs(t, err, errdefs.ErrInvalidArgument)
		})
	}
}

func TestStreamSink(t *testing.T) {
	tests := []struct {
		name   string
		writes []int
		chunks []int
	}{
		{"small writes", []int{3, 5}, []int{3, 5}},
		{"one chunk exactly", []int{migrateChunk}, []int{migrateChunk}},
		{"split", []int{2*migrateChunk + 7}, []int{migrateChunk, migrateChunk, 7}},
		{"empty write", []int{0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			var all bytes.Buffer
			sink := &streamSink{send: func(m *daemonv1.ReceiveRequest) error {
				got = append(got, len(m.Chunk))
				all.Write(m.Chunk)
				return nil
			}}
			var want bytes.Buffer
			for i, n := range tt.writes {
				p := bytes.Repeat([]byte{byte(i + 1)}, n)
				want.Write(p)
				written, err := sink.Write(p)
				require.NoError(t, err)
				assert.Equal(t, n, written)
			}
			assert.Equal(t, tt.chunks, got)
			assert.Equal(t, want.Bytes(), all.Bytes())
			size, err := sink.Commit()
			require.NoError(t, err)
			assert.Equal(t, int64(want.Len()), size)
		})
	}

	t.Run("a failed send fails every later write", func(t *testing.T) {
		calls := 0
		sink := &streamSink{send: func(*daemonv1.ReceiveRequest) error { calls++; return errors.New("EOF") }}
		_, err := sink.Write([]byte("x"))
		require.ErrorContains(t, err, "send the checkpoint to the destination")
		_, err = sink.Write([]byte("y"))
		require.Error(t, err)
		assert.Equal(t, 1, calls)
		assert.Error(t, sink.Abort())
		_, err = sink.Commit()
		assert.Error(t, err)
	})
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		code connect.Code
		want error
	}{
		{connect.CodeUnauthenticated, errdefs.ErrUnauthenticated},
		{connect.CodeInvalidArgument, errdefs.ErrInvalidArgument},
		{connect.CodeUnavailable, errdefs.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			assert.Equal(t, tt.code, toConnect(kindErr(tt.code)).Code())
			assert.ErrorIs(t, kindOf(tt.code), tt.want)
		})
	}
	assert.Equal(t, connect.CodeInternal, toConnect(kindErr(connect.CodeInternal)).Code())
}

// kindErr is an error of the kind that code comes from.
func kindErr(code connect.Code) error {
	return errors.Join(kindOf(code), errors.New("x"))
}
