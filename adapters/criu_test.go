package adapters

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/criu"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// criuClient returns a client of the machine's CRIU; the test skips without root and CRIU,
// except under CI=true, where it fails.
func criuClient(t *testing.T) *criu.Client {
	t.Helper()
	bin, err := criu.FindBinary("")
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("not root")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but CRIU cannot run here: %v", err)
		}
		t.Skipf("CRIU cannot run here: %v", err)
	}
	return &criu.Client{Binary: bin}
}

// TestDumpFrozen: the DumpFrozen captures run while CRIU holds the tree frozen; when one fails,
// the dump fails with its error and CRIU resumes the tree, which goes on running.
func TestDumpFrozen(t *testing.T) {
	c := criuClient(t)
	for _, fail := range []bool{false, true} {
		name := map[bool]string{false: "capture succeeds", true: "capture fails"}[fail]
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("sleep", "60")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			require.NoError(t, cmd.Start())
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
			pid := cmd.Process.Pid

			errCapture := errors.New("capture failed")
			var stateDuring byte
			opts := Opts{CRIU: c, ImageDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			opts.DumpFrozen = append(opts.DumpFrozen, func() error {
				st, err := sysinfo.ReadStat(pid)
				require.NoError(t, err)
				stateDuring = st.State
				if fail {
					return errCapture
				}
				return nil
			})
			req := &daemonv1.DumpRequest{Type: "process", Name: "t", Criu: &daemonv1.CriuOptions{}}
			resp := &daemonv1.DumpResponse{Checkpoint: &daemonv1.Checkpoint{Pid: int32(pid)}}
			err := DumpWithCRIU(context.Background(), opts, req, resp)
			assert.Contains(t, "tT", string(stateDuring), "the capture ran with the tree frozen (state %q)", stateDuring)
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
			time.Sleep(200 * time.Millisecond)
			st, err := sysinfo.ReadStat(pid)
			require.NoError(t, err, "the process still exists")
			assert.Equal(t, byte('S'), st.State, "the process runs on, resumed")
		})
	}
}
