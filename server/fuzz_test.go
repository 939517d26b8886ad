package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/config"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage"
)

// The fuzz targets below feed random bytes to the checks of each DaemonService request, decoded
// both as binary protobuf and as the JSON Connect accepts. Nothing they run starts a process,
// runs CRIU or touches a file: the dump and restore chains are cut after their checks
// (chain.DumpChecks, chain.RestoreChecks) by a handler that asserts what the rest of the chain relies on.
// The property: no panic, and every error is one the daemon answers with a proper code
// (invalid_argument; unimplemented for a runtime this binary lacks; failed_precondition for a lazy
// restore this process cannot serve), never internal or unknown,
// in a message of one line.

// decoders are the ways a request reaches a handler: Connect's binary and JSON codecs.
var decoders = map[string]func([]byte, proto.Message) error{
	"binary": proto.Unmarshal,
	"json":   protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal,
}

// fuzzRequest fuzzes check with requests of seeds' type, starting from seeds in both encodings.
// check returns the error the daemon would answer with; codes are those it may map to.
func fuzzRequest[T proto.Message](f *testing.F, seeds []T, check func(*testing.T, T) error, codes ...connect.Code) {
	f.Helper()
	for _, seed := range seeds {
		f.Add(protowire(f, seed))
		j, err := protojson.Marshal(seed)
		require.NoError(f, err)
		f.Add(j)
	}
	f.Add([]byte{})
	f.Add([]byte("{}"))
	codes = append(codes, connect.CodeInvalidArgument)
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, decode := range decoders {
			req := seeds[0].ProtoReflect().Type().New().Interface().(T)
			if decode(data, req) != nil {
				continue
			}
			requireProperError(t, name, check(t, req), codes...)
		}
	})
}

// requireProperError requires err to be nil or to map to one of codes with a one-line message.
func requireProperError(t *testing.T, decoder string, err error, codes ...connect.Code) {
	t.Helper()
	if err == nil {
		return
	}
	cerr := toConnect(err)
	require.Contains(t, codes, cerr.Code(), "%s request: %v", decoder, err)
	require.NotEmpty(t, cerr.Message())
	require.NotContains(t, cerr.Message(), "\n", "%s request: the message is one line", decoder)
}

// fuzzEnv is the environment the checks run in: the defaults of the configuration.
func fuzzEnv() *adapters.Env {
	cfg := config.Default()
	return &adapters.Env{CheckpointDir: cfg.Checkpoint.Dir, Compression: cfg.Checkpoint.Compression}
}

// fuzzState is a request's state with a logger that discards everything.
func fuzzState() adapters.State {
	return adapters.State{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func FuzzDumpRequest(f *testing.F) {
	seeds := []*daemonv1.DumpRequest{
		{Type: "process", Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 4242}}},
		{
			Type: "process", Dir: "/var/lib/cedana/checkpoints", Name: "counter-1", Compression: "zstd", OperationId: "op-1",
			Criu:    &daemonv1.CriuOptions{LeaveRunning: true, TcpEstablished: true, FileLocks: true, External: []string{"mnt[/data]:data"}},
			Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 4242}},
		},
		{Jid: "brave-otter-3f2a", Name: "nightly", Compression: "lz4"},
		{Type: "runc", Dir: "s3://bucket/prefix", Compression: "gzip", Details: &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: "web", Root: "/run/runc"}}},
		{Type: "containerd", Details: &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: "redis", Namespace: "k8s.io", Rootfs: true}}},
		{Type: "process", Dir: "relative/dir", Name: "../escape"},
		{Type: "process", Dir: "s3://", Compression: "none"},
		{Type: "nosuch", Name: ".hidden", Compression: "bzip2"},
	}
	fuzzRequest(f, seeds, checkDump, connect.CodeUnimplemented)
}

// checkDump runs what a dump request meets before anything touches the machine: its validation,
// the runtime's resolution, and the chain's checks.
func checkDump(t *testing.T, req *daemonv1.DumpRequest) error {
	if err := validateDump(req); err != nil {
		return err
	}
	_, err := chain.Dump(req.Type)
	requireProperError(t, "resolved", err, connect.CodeInvalidArgument, connect.CodeUnimplemented)
	checked := false
	end := func(_ context.Context, _ *adapters.Env, _ adapters.State, req *daemonv1.DumpRequest, _ *daemonv1.DumpResponse) (adapters.Dumped, error) {
		checked = true
		requireDumpable(t, req)
		return false, nil
	}
	_, err = adapters.DumpHandler(end).With(chain.DumpChecks()...)(context.Background(), fuzzEnv(), fuzzState(), req, &daemonv1.DumpResponse{})
	require.True(t, err != nil || checked, "the checks neither failed nor went on")
	return err
}

// requireDumpable asserts what the rest of the dump chain relies on.
func requireDumpable(t *testing.T, req *daemonv1.DumpRequest) {
	t.Helper()
	require.NotEmpty(t, req.Type)
	require.NotNil(t, req.Criu)
	require.NotNil(t, req.Details)
	codec, err := archive.ParseCodec(req.Compression)
	require.NoError(t, err)
	_, remote, err := storage.ParseURL(req.Dir)
	require.NoError(t, err)
	if remote {
		require.NotEqual(t, archive.None, codec, "an s3:// checkpoint is an archive")
	} else {
		require.True(t, filepath.IsAbs(req.Dir), "dir %q", req.Dir)
		require.Equal(t, filepath.Clean(req.Dir), filepath.Dir(filepath.Join(req.Dir, req.Name)), "name %q stays in dir %q", req.Name, req.Dir)
	}
	require.NotEmpty(t, req.Name)
	require.False(t, strings.HasPrefix(req.Name, "."), "name %q", req.Name)
	require.LessOrEqual(t, len(req.Name), adapters.MaxNameLen)
	require.NoError(t, noNUL(req))
}

func FuzzRestoreRequest(f *testing.F) {
	seeds := []*daemonv1.RestoreRequest{
		{Path: "/var/lib/cedana/checkpoints/dump-process-1700000000000000000"},
		{
			Type: "process", Path: "/var/lib/cedana/checkpoints/nightly.tar.zst", OperationId: "op-2",
			Criu: &daemonv1.CriuOptions{TcpEstablished: true, ShellJob: true},
		},
		{Jid: "brave-otter-3f2a"},
		{Type: "runc", Path: "s3://bucket/prefix/web.tar.gz", Details: &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: "web2", Bundle: "/srv/bundle"}}},
		{Type: "containerd", Path: "ck", Details: &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: "redis2", Image: "docker.io/library/redis:7"}}},
		{Path: "s3://", OperationId: "a\tb"},
		{Type: "process", Path: "/var/lib/cedana/checkpoints/big", Lazy: true},
		{Type: "runc", Path: "ck", Lazy: true},
	}
	// A lazy restore is refused with failed_precondition where no lazy-pages server can be kept
	// (fuzzEnv has no LazyCheck, as with --no-server) and unimplemented for a runtime without it.
	fuzzRequest(f, seeds, checkRestore, connect.CodeFailedPrecondition, connect.CodeUnimplemented)
}

// checkRestore runs a restore request's validation and the chain's checks.
func checkRestore(t *testing.T, req *daemonv1.RestoreRequest) error {
	if err := validateRestore(req); err != nil {
		return err
	}
	checked := false
	end := func(_ context.Context, _ *adapters.Env, _ adapters.State, req *daemonv1.RestoreRequest, _ *daemonv1.RestoreResponse) error {
		checked = true
		require.NotEmpty(t, req.Path)
		require.NotNil(t, req.Criu)
		require.NotNil(t, req.Details)
		_, _, err := storage.ParseURL(req.Path)
		require.NoError(t, err)
		require.NoError(t, noNUL(req))
		return nil
	}
	err := adapters.RestoreHandler(end).With(chain.RestoreChecks()...)(context.Background(), fuzzEnv(), fuzzState(), req, &daemonv1.RestoreResponse{})
	require.True(t, err != nil || checked, "the checks neither failed nor went on")
	return err
}

// checkedBy adapts a request's validate function to fuzzRequest.
func checkedBy[T proto.Message](validate func(T) error) func(*testing.T, T) error {
	return func(_ *testing.T, req T) error { return validate(req) }
}

func FuzzRunRequest(f *testing.F) {
	seeds := []*daemonv1.RunRequest{
		{Type: "process", Process: &daemonv1.ProcessRun{Path: "sleep", Args: []string{"1000"}, WorkingDir: "/root", Env: []string{"PATH=/usr/bin:/bin", "HOME=/root"}}},
		{Type: "process", Jid: "counter", Log: "/var/log/cedana/counter.log", Process: &daemonv1.ProcessRun{Path: "/bin/sh", Args: []string{"-c", "while :; do echo tick; sleep 1; done"}}},
		{Type: "runc", Jid: "web", Runc: &daemonv1.RuncDetails{Id: "web", Bundle: "/srv/bundle", Root: "/run/runc"}},
		{Type: "containerd", Containerd: &daemonv1.ContainerdDetails{Id: "redis", Image: "docker.io/library/redis:7", Args: []string{"redis-server"}}},
		{Type: "process", Log: "relative.log", Jid: ".bad"},
	}
	fuzzRequest(f, seeds, checkedBy(validateRun))
}

func FuzzManageRequest(f *testing.F) {
	seeds := []*daemonv1.ManageRequest{
		{Type: "process", Details: &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 4242}}},
		{Type: "runc", Jid: "adopted", Details: &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: "web"}}},
		{Type: "containerd", Details: &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: "redis", Namespace: "default"}}},
	}
	fuzzRequest(f, seeds, checkedBy(validateManage))
}

func FuzzGetJobRequest(f *testing.F) {
	fuzzRequest(f, []*daemonv1.GetJobRequest{{Jid: "brave-otter-3f2a"}, {Jid: ""}, {Jid: "../x"}}, checkedBy(validateGetJob))
}

func FuzzKillJobRequest(f *testing.F) {
	seeds := []*daemonv1.KillJobRequest{
		{Jids: []string{"brave-otter-3f2a"}},
		{Jids: []string{"j1", "j2"}, Signal: 15},
		{Jids: []string{"j1"}, Signal: 99},
		{Signal: -9},
	}
	fuzzRequest(f, seeds, checkedBy(validateKillJob))
}

func FuzzDeleteJobRequest(f *testing.F) {
	seeds := []*daemonv1.DeleteJobRequest{{Jids: []string{"brave-otter-3f2a"}}, {Jids: []string{"j1", "j2"}, Force: true}, {Force: true}}
	fuzzRequest(f, seeds, checkedBy(validateDeleteJob))
}

func FuzzAttachRequest(f *testing.F) {
	seeds := []*daemonv1.AttachRequest{{Jid: "brave-otter-3f2a"}, {Jid: "counter", FromStart: true}, {Jid: "counter", TailLines: 100}, {Jid: "x", TailLines: -1}}
	fuzzRequest(f, seeds, checkedBy(validateAttach))
}

func FuzzWriteStdinRequest(f *testing.F) {
	seeds := []*daemonv1.WriteStdinRequest{{Jid: "brave-otter-3f2a", Data: []byte("hello\n")}, {Jid: "cat", Data: []byte{0, 0xff, '\n'}}, {Data: []byte("x")}}
	fuzzRequest(f, seeds, checkedBy(validateWriteStdin))
}

func FuzzWatchProgressRequest(f *testing.F) {
	seeds := []*daemonv1.WatchProgressRequest{{OperationId: "op-1"}, {OperationId: "0b4f3c2e-8d1a-4a8e-9c55-5f1d2f6e7a10"}, {OperationId: "a\x00b"}}
	fuzzRequest(f, seeds, checkedBy(validateWatchProgress))
}

func FuzzListCheckpointsRequest(f *testing.F) {
	fuzzRequest(f, []*daemonv1.ListCheckpointsRequest{{}, {Jid: "brave-otter-3f2a"}, {Jid: "a b"}}, checkedBy(validateListCheckpoints))
}

func FuzzGetCheckpointRequest(f *testing.F) {
	fuzzRequest(f, []*daemonv1.GetCheckpointRequest{{Id: "ck-9c1e04b7a2"}, {Id: "ck/1"}}, checkedBy(validateGetCheckpoint))
}

func FuzzDeleteCheckpointRequest(f *testing.F) {
	fuzzRequest(f, []*daemonv1.DeleteCheckpointRequest{{Id: "ck-9c1e04b7a2"}, {Id: ""}}, checkedBy(validateDeleteCheckpoint))
}

func FuzzInspectCheckpointRequest(f *testing.F) {
	seeds := []*daemonv1.InspectCheckpointRequest{
		{Id: "ck-9c1e04b7a2", Type: "ps"},
		{Path: "/ck/a.tar.zst", Type: "fd"},
		{Path: "s3://bucket/ck/a.tar", Type: "sk"},
		{Path: "ck", Type: "mem"},
		{Id: "a", Path: "/b", Type: "rss"},
		{Id: "x"},
	}
	fuzzRequest(f, seeds, checkedBy(validateInspectCheckpoint))
}

// FuzzEmptyRequests covers the requests that take no arguments (ListFeatures, ListJobs): whatever
// the bytes, what decodes holds no field a handler could see, only unknown fields, and
// ListFeatures (the one of them that needs nothing else) answers it. (HealthCheck takes full.)
func FuzzEmptyRequests(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("{}"))
	f.Add(protowire(f, &daemonv1.GetJobRequest{Jid: "unknown-field"}))
	f.Add([]byte(`{"jid":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, decode := range decoders {
			for _, req := range []proto.Message{&daemonv1.ListFeaturesRequest{}, &daemonv1.ListJobsRequest{}} {
				if decode(data, req) != nil {
					continue
				}
				req.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
					t.Fatalf("%s %s has a field %s", name, req.ProtoReflect().Descriptor().Name(), fd.Name())
					return false
				})
			}
			req := &daemonv1.ListFeaturesRequest{}
			if decode(data, req) == nil {
				resp, err := (&service{}).ListFeatures(context.Background(), req)
				require.NoError(t, err)
				require.NotEmpty(t, resp.Features)
			}
		}
	})
}

// protowire is msg in the binary encoding.
func protowire(f *testing.F, msg proto.Message) []byte {
	b, err := proto.Marshal(msg)
	require.NoError(f, err)
	return b
}
