package withcriu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/testutil"
	"github.com/cedana/cedana/sysinfo"
)

// TestDumpFrozen: the DumpFrozen captures run while CRIU holds the tree frozen; when one fails,
// the dump fails with its error and CRIU resumes the tree, which goes on running.
func TestDumpFrozen(t *testing.T) {
	c := testutil.RequireCRIU(t)
	for _, fail := range []bool{false, true} {
		name := map[bool]string{false: "capture succeeds", true: "capture fails"}[fail]
		t.Run(name, func(t *testing.T) {
			pid, exited := sleeper(t)

			errCapture := errors.New("capture failed")
			var stateDuring byte
			env := &adapters.Env{CRIU: c}
			st := adapters.State{ImageDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			st.DumpFrozen = append(st.DumpFrozen, func() error {
				proc, err := sysinfo.ReadStat(pid)
				require.NoError(t, err)
				stateDuring = proc.State
				if fail {
					return errCapture
				}
				return nil
			})
			req := &daemonv1.DumpRequest{Type: "process", Name: "t", Criu: &daemonv1.CriuOptions{}}
			resp := &daemonv1.DumpResponse{Checkpoint: &daemonv1.Checkpoint{Pid: int32(pid)}}
			dumped, err := Dump(context.Background(), env, st, req, resp)
			assert.Contains(t, "tT", string(stateDuring), "the capture ran with the tree frozen (state %q)", stateDuring)
			assert.Equal(t, adapters.Dumped(!fail), dumped)
			if !fail {
				require.NoError(t, err)
				select {
				case <-exited: // CRIU killed it after the dump, as without --leave-running
				case <-time.After(10 * time.Second):
					t.Fatal("the dumped process was not stopped")
				}
				return
			}
			require.ErrorIs(t, err, errCapture)
			require.Eventually(t, func() bool {
				proc, err := sysinfo.ReadStat(pid)
				return err == nil && proc.State == 'S'
			}, 10*time.Second, 10*time.Millisecond, "the process runs on, resumed (sleeping, neither frozen nor gone)")
		})
	}
}

// TestDumpClaimsTheTree: Dump claims the tree it dumps by its root PID, whatever
// the runtime, so a second dump of a tree being dumped is refused as busy before CRIU is asked;
// the claim is released when the dump ends, failed or not.
func TestDumpClaimsTheTree(t *testing.T) {
	tests := []struct {
		name     string
		held     string // a key another request holds
		typ      string
		pid      int32
		noClaim  bool
		wantBusy bool
	}{
		{name: "free tree", typ: "process", pid: 10},
		{name: "tree held by a process dump", held: "tree:10", typ: "process", pid: 10, wantBusy: true},
		{name: "runc dump of a held tree", held: "tree:10", typ: "runc", pid: 10, wantBusy: true},
		{name: "containerd dump of a held tree", held: "tree:10", typ: "containerd", pid: 10, wantBusy: true},
		{name: "another tree", held: "tree:10", typ: "runc", pid: 11},
		{name: "no claims (--no-server)", held: "tree:10", typ: "process", pid: 10, noClaim: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claimed := map[string]bool{}
			if tt.held != "" {
				claimed[tt.held] = true
			}
			var asked []string
			env, st := &adapters.Env{}, adapters.State{ImageDir: filepath.Join(t.TempDir(), "missing")}
			if !tt.noClaim {
				env.Claim = func(key, what string) (func(), error) {
					asked = append(asked, key)
					if claimed[key] {
						return nil, errs.Busy("%s is busy with another operation", what)
					}
					claimed[key] = true
					return func() { delete(claimed, key) }, nil
				}
			}
			req := &daemonv1.DumpRequest{Type: tt.typ, Criu: &daemonv1.CriuOptions{}}
			resp := &daemonv1.DumpResponse{Checkpoint: &daemonv1.Checkpoint{Pid: tt.pid}}
			dumped, err := Dump(context.Background(), env, st, req, resp)
			require.Error(t, err)
			assert.False(t, bool(dumped))
			if tt.wantBusy {
				assert.ErrorIs(t, err, errdefs.ErrConflict)
				assert.Contains(t, err.Error(), fmt.Sprintf("PID %d", tt.pid))
			} else {
				assert.NotErrorIs(t, err, errdefs.ErrConflict)
				assert.Contains(t, err.Error(), "open checkpoint directory", "got past the claim to the images")
			}
			if !tt.noClaim {
				assert.Equal(t, []string{fmt.Sprintf("tree:%d", tt.pid)}, asked)
			}
			want := map[string]bool{}
			if tt.held != "" {
				want[tt.held] = true
			}
			assert.Equal(t, want, claimed, "only the other request's claim is left")
		})
	}
}
