package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

func TestHumanSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1024*1024 - 1, "1.0 MiB"},
		{1024 * 1024, "1.0 MiB"},
		{1258291, "1.2 MiB"},
		{256 << 20, "256.0 MiB"},
		{1 << 30, "1.0 GiB"},
		{5 << 40, "5120.0 GiB"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, humanSize(tt.in), "humanSize(%d)", tt.in)
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in      string
		want    unix.Signal
		wantErr string
	}{
		{in: "TERM", want: unix.SIGTERM},
		{in: "SIGTERM", want: unix.SIGTERM},
		{in: "sigterm", want: unix.SIGTERM},
		{in: "15", want: unix.SIGTERM},
		{in: "kill", want: unix.SIGKILL},
		{in: "KILL", want: unix.SIGKILL},
		{in: "9", want: unix.SIGKILL},
		{in: "usr1", want: unix.SIGUSR1},
		{in: "34", want: unix.Signal(34)},
		{in: "bogus", wantErr: `unknown signal "bogus"`},
		{in: "SIG", wantErr: "unknown signal"},
		{in: "", wantErr: "unknown signal"},
		{in: "0", wantErr: "out of range"},
		{in: "65", wantErr: "out of range"},
		{in: "-9", wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSignal(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestJobStatus(t *testing.T) {
	tests := []struct {
		name string
		job  *daemonv1.Job
		want string
	}{
		{"running", &daemonv1.Job{Status: "running"}, "running"},
		{"halted", &daemonv1.Job{Status: "halted"}, "halted"},
		{"halted with exit", &daemonv1.Job{Status: "halted", ExitCode: proto.Int32(3)}, "halted (exit 3)"},
		{"halted with exit 0", &daemonv1.Job{Status: "halted", ExitCode: proto.Int32(0)}, "halted (exit 0)"},
		{"empty status", &daemonv1.Job{}, "halted"},
		{"empty status with exit", &daemonv1.Job{ExitCode: proto.Int32(137)}, "halted (exit 137)"},
		{"running, lazy pages loading", &daemonv1.Job{Status: "running", LazyPages: "serving since 2026-12-02T02:31:05Z (criu lazy-pages, PID 7)"}, "running (lazy pages loading)"},
		{"migrated", &daemonv1.Job{Status: "migrated", MigratedTo: "10.0.0.2:8080"}, "migrated (to 10.0.0.2:8080)"},
		{"killed by a failed lazy restore", &daemonv1.Job{Status: "halted", ExitCode: proto.Int32(137), LazyPages: "failed: criu lazy-pages ..."}, "halted (exit 137; lazy pages failed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, jobStatus(tt.job))
		})
	}
}

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	code := Main(context.Background(), args, Env{
		Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string {
			switch k {
			case "CEDANA_CONFIG_DIR":
				return dir
			case "CEDANA_ADDRESS":
				return "/nonexistent/cedana.sock"
			}
			return ""
		},
	})
	return code, stdout.String(), stderr.String()
}

// TestJobGrammar parses the job and checkpoint commands; none of these reach a daemon.
func TestJobGrammar(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "ps help", args: []string{"ps", "--help"}, stdout: []string{"cedana ps"}},
		{name: "job help", args: []string{"job", "--help"}, stdout: []string{"list", "inspect", "kill", "delete"}},
		{name: "job list help", args: []string{"job", "list", "--help"}},
		{name: "job inspect help", args: []string{"job", "inspect", "--help"}, stdout: []string{"<jid>"}},
		{name: "job kill help", args: []string{"job", "kill", "--help"}, stdout: []string{"--signal", "<jid> ..."}},
		{name: "job delete help", args: []string{"job", "delete", "--help"}, stdout: []string{"--force", "<jid> ..."}},
		{name: "checkpoint list help", args: []string{"checkpoint", "list", "--help"}, stdout: []string{"--jid"}},
		{name: "checkpoint inspect help", args: []string{"checkpoint", "inspect", "--help"}, stdout: []string{"<id>"}},
		{name: "checkpoint delete help", args: []string{"checkpoint", "delete", "--help"}, stdout: []string{"<id>"}},
		{name: "kill needs jid", args: []string{"job", "kill"}, code: 80, stderr: []string{"no job given", "--all"}},
		{name: "delete needs jid", args: []string{"delete"}, code: 80, stderr: []string{"no job given", "--all"}},
		{name: "kill jids and all", args: []string{"kill", "j1", "--all"}, code: 80, stderr: []string{"job IDs or --all, not both"}},
		{name: "top-level kill help", args: []string{"kill", "--help"}, stdout: []string{"--all", "--signal", "<jid> ..."}},
		{name: "top-level delete help", args: []string{"delete", "--help"}, stdout: []string{"--all", "--force", "every halted job"}},
		{name: "kill all without daemon", args: []string{"kill", "--all"}, code: 1, stderr: []string{"cannot reach the cedana daemon"}},
		{name: "delete all without daemon", args: []string{"delete", "-a", "-f"}, code: 1, stderr: []string{"cannot reach the cedana daemon"}},
		{name: "job list jid help", args: []string{"job", "list", "--help"}, stdout: []string{"--jid"}},
		{name: "ps jid without daemon", args: []string{"ps", "--jid", "a", "--jid", "b"}, code: 1, stderr: []string{"cannot reach the cedana daemon"}},
		{name: "kill bad signal", args: []string{"job", "kill", "--signal", "bogus", "j1"}, code: 80, stderr: []string{`unknown signal "bogus"`}},
		{name: "checkpoint inspect needs id", args: []string{"checkpoint", "inspect"}, code: 80, stderr: []string{`expected "<id>"`}},
		{name: "checkpoint inspect path needs type", args: []string{"checkpoint", "inspect", "--path", "/ck"}, code: 80, stderr: []string{"--path needs --type"}},
		{name: "checkpoint inspect id and path", args: []string{"checkpoint", "inspect", "ck1", "--path", "/ck", "-t", "ps"}, code: 80, stderr: []string{"give one of them"}},
		{name: "checkpoint inspect bad type", args: []string{"checkpoint", "inspect", "ck1", "-t", "gpu"}, code: 80, stderr: []string{`--type must be one of "ps","fd"`}},
		{name: "ps without daemon", args: []string{"ps"}, code: 1, stderr: []string{"cannot reach the cedana daemon"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tt.args...)
			assert.Equal(t, tt.code, code, "stdout: %s\nstderr: %s", stdout, stderr)
			for _, want := range tt.stdout {
				assert.Contains(t, stdout, want)
			}
			for _, want := range tt.stderr {
				assert.Contains(t, stderr, want)
			}
		})
	}
}

// fakeClient answers the job and catalog RPCs from fixed data and records what it was asked; any
// other RPC panics on the nil embedded interface.
type fakeClient struct {
	daemonv1connect.DaemonServiceClient

	jobs    []*daemonv1.Job
	entry   *daemonv1.CheckpointEntry
	calls   []string
	kill    *daemonv1.KillJobRequest
	del     *daemonv1.DeleteJobRequest
	listJID string
}

func (f *fakeClient) ListJobs(context.Context, *daemonv1.ListJobsRequest) (*daemonv1.ListJobsResponse, error) {
	f.calls = append(f.calls, "ListJobs")
	return &daemonv1.ListJobsResponse{Jobs: f.jobs}, nil
}

func (f *fakeClient) GetJob(_ context.Context, req *daemonv1.GetJobRequest) (*daemonv1.GetJobResponse, error) {
	f.calls = append(f.calls, "GetJob")
	for _, j := range f.jobs {
		if j.Jid == req.Jid {
			return &daemonv1.GetJobResponse{Job: j}, nil
		}
	}
	return &daemonv1.GetJobResponse{}, nil
}

func (f *fakeClient) KillJob(_ context.Context, req *daemonv1.KillJobRequest) (*daemonv1.KillJobResponse, error) {
	f.calls = append(f.calls, "KillJob")
	f.kill = req
	return &daemonv1.KillJobResponse{}, nil
}

func (f *fakeClient) DeleteJob(_ context.Context, req *daemonv1.DeleteJobRequest) (*daemonv1.DeleteJobResponse, error) {
	f.calls = append(f.calls, "DeleteJob")
	f.del = req
	return &daemonv1.DeleteJobResponse{}, nil
}

func (f *fakeClient) ListCheckpoints(_ context.Context, req *daemonv1.ListCheckpointsRequest) (*daemonv1.ListCheckpointsResponse, error) {
	f.calls = append(f.calls, "ListCheckpoints")
	f.listJID = req.Jid
	return &daemonv1.ListCheckpointsResponse{Checkpoints: []*daemonv1.CheckpointEntry{f.entry}}, nil
}

func (f *fakeClient) GetCheckpoint(context.Context, *daemonv1.GetCheckpointRequest) (*daemonv1.GetCheckpointResponse, error) {
	f.calls = append(f.calls, "GetCheckpoint")
	return &daemonv1.GetCheckpointResponse{Checkpoint: f.entry}, nil
}

func (f *fakeClient) DeleteCheckpoint(context.Context, *daemonv1.DeleteCheckpointRequest) (*daemonv1.DeleteCheckpointResponse, error) {
	f.calls = append(f.calls, "DeleteCheckpoint")
	return &daemonv1.DeleteCheckpointResponse{}, nil
}

func newFake() *fakeClient {
	entry := &daemonv1.CheckpointEntry{
		Id: "c1", Jid: "j1", Path: "/var/lib/cedana/dump-1", Type: "process", SizeBytes: 1258291,
		Checkpoint: &daemonv1.Checkpoint{
			Pid: 42, Pids: []int32{42, 43}, Cmdline: []string{"sleep", "100"}, CriuVersion: 40101,
			Options: &daemonv1.CriuOptions{LeaveRunning: true, External: []string{"mnt[/x]:k"}},
		},
	}
	return &fakeClient{
		entry: entry,
		jobs: []*daemonv1.Job{
			{Jid: "j1", Type: "process", Pid: 42, Status: "running", Log: "/var/log/cedana/j1.log", LatestCheckpoint: entry},
			{Jid: "j2", Type: "process", Pid: 50, Status: "halted", ExitCode: proto.Int32(1)},
		},
	}
}

func TestJobCommands(t *testing.T) {
	ctx := context.Background()
	text := &Globals{Output: "text"}

	t.Run("ps", func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, (&PsCmd{}).Run(ctx, text, Env{Stdout: &out}, newFake()))
		lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		require.Len(t, lines, 3)
		assert.Equal(t, []string{"JOB", "TYPE", "PID", "STATUS", "CHECKPOINT", "SIZE", "LOG"}, strings.Fields(lines[0]))
		assert.Equal(t, []string{"j1", "process", "42", "running", "/var/lib/cedana/dump-1", "1.2", "MiB", "/var/log/cedana/j1.log"}, strings.Fields(lines[1]))
		assert.Contains(t, lines[2], "halted (exit 1)")
		assert.Equal(t, []string{"j2", "process", "50", "halted", "(exit", "1)", "-", "-", "-"}, strings.Fields(lines[2]))
	})

	t.Run("ps empty", func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, (&JobListCmd{}).Run(ctx, text, Env{Stdout: &out}, &fakeClient{}))
		assert.Equal(t, "JOB TYPE PID STATUS CHECKPOINT SIZE LOG", strings.Join(strings.Fields(out.String()), " "))
	})

	t.Run("ps json", func(t *testing.T) {
		var out bytes.Buffer
		f := newFake()
		require.NoError(t, (&PsCmd{}).Run(ctx, &Globals{Output: "json"}, Env{Stdout: &out}, f))
		assert.Contains(t, out.String(), `"latest_checkpoint"`)
		var got daemonv1.ListJobsResponse
		require.NoError(t, protojson.Unmarshal(out.Bytes(), &got))
		assert.True(t, proto.Equal(&daemonv1.ListJobsResponse{Jobs: f.jobs}, &got), "got %v", &got)
	})

	t.Run("inspect", func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, (&JobInspectCmd{JID: "j2"}).Run(ctx, text, Env{Stdout: &out}, newFake()))
		assert.Contains(t, out.String(), "halted (exit 1)")
		assert.Contains(t, out.String(), "latest checkpoint")
	})

	t.Run("kill default", func(t *testing.T) {
		var out bytes.Buffer
		f := newFake()
		cmd := &JobKillCmd{JIDs: []string{"j1", "j2"}, Signal: "KILL"}
		require.NoError(t, cmd.Validate())
		require.NoError(t, cmd.Run(ctx, text, Env{Stdout: &out}, f))
		assert.Equal(t, []string{"j1", "j2"}, f.kill.Jids)
		assert.Equal(t, int32(9), f.kill.Signal)
		assert.Equal(t, "Killed j1\nKilled j2\n", out.String())
	})

	t.Run("kill term", func(t *testing.T) {
		var out bytes.Buffer
		f := newFake()
		cmd := &JobKillCmd{JIDs: []string{"j1"}, Signal: "term"}
		require.NoError(t, cmd.Run(ctx, text, Env{Stdout: &out}, f))
		assert.Equal(t, int32(15), f.kill.Signal)
		assert.Equal(t, "Signalled j1 with SIGTERM\n", out.String())
	})

	t.Run("delete", func(t *testing.T) {
		var out bytes.Buffer
		f := newFake()
		require.NoError(t, (&JobDeleteCmd{JIDs: []string{"j1", "j2"}, Force: true}).Run(ctx, text, Env{Stdout: &out}, f))
		assert.True(t, f.del.Force)
		assert.Equal(t, "Deleted j1\nDeleted j2\n", out.String())
	})
}

func TestCheckpointCommands(t *testing.T) {
	ctx := context.Background()
	text := &Globals{Output: "text"}

	t.Run("list", func(t *testing.T) {
		var out bytes.Buffer
		f := newFake()
		require.NoError(t, (&CheckpointListCmd{JID: "j1"}).Run(ctx, text, Env{Stdout: &out}, f))
		assert.Equal(t, "j1", f.listJID)
		lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		require.Len(t, lines, 2)
		assert.Equal(t, []string{"ID", "JOB", "TYPE", "SIZE", "CREATED", "PATH"}, strings.Fields(lines[0]))
		assert.Equal(t, []string{"c1", "j1", "process", "1.2", "MiB", "-", "/var/lib/cedana/dump-1"}, strings.Fields(lines[1]))
	})

	t.Run("inspect", func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, (&CheckpointInspectCmd{ID: "c1"}).Run(ctx, text, Env{Stdout: &out}, newFake()))
		for _, want := range []string{"sleep 100", "4.1.1", "42 43", "leave-running, external=mnt[/x]:k"} {
			assert.Contains(t, out.String(), want)
		}
	})

	t.Run("inspect json", func(t *testing.T) {
		var out bytes.Buffer
		f := newFake()
		require.NoError(t, (&CheckpointInspectCmd{ID: "c1"}).Run(ctx, &Globals{Output: "json"}, Env{Stdout: &out}, f))
		var got daemonv1.CheckpointEntry
		require.NoError(t, protojson.Unmarshal(out.Bytes(), &got))
		assert.True(t, proto.Equal(f.entry, &got), "got %v", &got)
	})

	t.Run("delete", func(t *testing.T) {
		var out bytes.Buffer
		f := newFake()
		require.NoError(t, (&CheckpointDeleteCmd{ID: "c1"}).Run(ctx, text, Env{Stdout: &out}, f))
		assert.Equal(t, []string{"GetCheckpoint", "DeleteCheckpoint"}, f.calls)
		assert.Equal(t, "Deleted checkpoint c1 (/var/lib/cedana/dump-1)\n", out.String())
	})
}

func TestFormatDetails(t *testing.T) {
	tests := []struct {
		name string
		in   *daemonv1.Details
		want string
	}{
		{"none", nil, "-"},
		{"empty", &daemonv1.Details{}, "-"},
		{"process", &daemonv1.Details{Process: &daemonv1.ProcessDetails{Pid: 42}}, "process pid=42"},
		{"runc", &daemonv1.Details{Runc: &daemonv1.RuncDetails{Id: "web", Root: "/run/runc"}}, "runc id=web root=/run/runc"},
		{
			"containerd, a list and a flag",
			&daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: "r", Namespace: "k8s.io", Rootfs: true, Args: []string{"a", "b"}}},
			"containerd id=r namespace=k8s.io rootfs=true args=[a,b]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, formatDetails(tt.in))
		})
	}
}
