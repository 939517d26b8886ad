package runtimehandler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/cli"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/criu"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/runccli"
	"github.com/cedana/cedana/k8s"
)

// The CRI's annotations in a container's OCI spec.
const (
	containerNameAnnotation = "io.kubernetes.cri.container-name"
	containerTypeAnnotation = "io.kubernetes.cri.container-type"
	imageNameAnnotation     = "io.kubernetes.cri.image-name"
	// sandboxType is containerTypeAnnotation's value for a pod's sandbox (pause) container, which
	// gets the pod's annotations too and is never restored.
	sandboxType = "sandbox"
)

// defaultRoot is runc's own state directory when --root is not given.
const defaultRoot = "/run/runc"

// restoredMarker is the file, in runc's state directory of a container the handler restored,
// that makes the runtime's following `start` a no-op: the container runs already. `runc delete`
// removes it with the rest of the state.
const restoredMarker = "cedana-restored"

// restoreTarget is what `create` of a container to restore says about it.
type restoreTarget struct {
	checkpoint, container, image, rootfs string
}

// restoreTargetOf reads the bundle's config.json and says whether its container is to be
// restored: an app container (not a pod's sandbox) whose spec has k8s.RestoreAnnotation. A
// bundle it cannot read is runc's to refuse.
func restoreTargetOf(bundle string) (restoreTarget, bool) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return restoreTarget{}, false
	}
	var spec specs.Spec
	if json.Unmarshal(data, &spec) != nil {
		return restoreTarget{}, false
	}
	a := spec.Annotations
	if a[k8s.RestoreAnnotation] == "" || a[containerTypeAnnotation] == sandboxType {
		return restoreTarget{}, false
	}
	t := restoreTarget{checkpoint: a[k8s.RestoreAnnotation], container: a[containerNameAnnotation], image: a[imageNameAnnotation]}
	if spec.Root != nil && spec.Root.Path != "" {
		t.rootfs = spec.Root.Path
		if !filepath.IsAbs(t.rootfs) {
			t.rootfs = filepath.Join(bundle, t.rootfs)
		}
	}
	return t, true
}

// restore creates container c by restoring it from its entry of the pod checkpoint t names:
// the daemon prepares the images (PrepareRestore), then runc restores them detached, as a child
// with the handler's stdio (the shim's pipes, onto which runc maps the dumped container's stdio),
// and the handler exits with runc's status. A failure is written where the shim reads runc's
// errors and leaves no runc container and no fetched images behind.
func restore(ctx context.Context, runc string, inv invocation, c createFlags, t restoreTarget, stderr io.Writer) int {
	err := restoreContainer(ctx, runc, inv, c, t)
	if err == nil {
		return 0
	}
	msg := err.Error()
	if !strings.Contains(msg, t.checkpoint) { // the daemon's errors name it already
		msg = fmt.Sprintf("pod checkpoint %s: %s", t.checkpoint, msg)
	}
	report(inv, stderr, fmt.Sprintf("cedana: restore container %s: %s", cmp.Or(t.container, c.id), msg))
	var failed *runcFailed
	if errors.As(err, &failed) && failed.code > 0 {
		return failed.code
	}
	return 1
}

// runcFailed is a failed `runc restore`: its exit code, and what runc and CRIU said.
type runcFailed struct {
	code int
	msg  string
}

func (e *runcFailed) Error() string { return e.msg }

func restoreContainer(ctx context.Context, runc string, inv invocation, c createFlags, t restoreTarget) error {
	if t.container == "" {
		return fmt.Errorf("the spec has no annotation %s: only containers created by the CRI (Kubernetes) can be restored from a pod checkpoint", containerNameAnnotation)
	}
	prepared, err := prepare(ctx, t)
	if err != nil {
		return err
	}
	if prepared.Temporary {
		defer os.RemoveAll(prepared.Dir)
	}
	work, err := os.MkdirTemp("", "cedana-runc-restore-")
	if err != nil {
		return fmt.Errorf("create CRIU's work directory: %w", err)
	}
	defer os.RemoveAll(work)
	args := append(append([]string{}, inv.globals...), "restore", "--detach", "--no-subreaper",
		"--bundle", c.bundle, "--image-path", prepared.Dir, "--work-path", work)
	if c.pidFile != "" {
		args = append(args, "--pid-file", c.pidFile)
	}
	if c.consoleSocket != "" {
		args = append(args, "--console-socket", c.consoleSocket)
	}
	if c.noPivot {
		args = append(args, "--no-pivot")
	}
	args = append(args, runccli.RestoreFlags(prepared.GetCheckpoint().GetOptions())...)
	cmd := exec.CommandContext(ctx, runc, append(args, c.id)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = criu.Env()
	if err := cmd.Run(); err != nil {
		msg := err.Error()
		if inv.log != "" && inv.logFormat == runccli.FormatJSON {
			msg = cmp.Or(runccli.LastError(inv.log), msg)
		}
		// runc may have left the container half made: it must not stay.
		del := exec.Command(runc, append(append([]string{}, inv.globals...), "delete", "--force", c.id)...)
		_ = del.Run()
		return &runcFailed{code: cmd.ProcessState.ExitCode(), msg: "runc restore: " + msg + criu.LogQuote(filepath.Join(work, checkpoint.RestoreLog))}
	}
	root := cmp.Or(inv.root, defaultRoot)
	if err := os.WriteFile(filepath.Join(root, c.id, restoredMarker), nil, 0o600); err != nil {
		return fmt.Errorf("mark container %s restored: %w", c.id, err)
	}
	return nil
}

// prepare asks the cedana daemon for the container's images (PrepareRestore), with the client the
// CLI would use (cedana's configuration: /etc/cedana/config.json, CEDANA_* variables).
func prepare(ctx context.Context, t restoreTarget) (*daemonv1.PrepareRestoreResponse, error) {
	cfg, err := config.Load("", os.Getenv)
	if err != nil {
		return nil, err
	}
	client, err := cli.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	resp, err := client.PrepareRestore(ctx, &daemonv1.PrepareRestoreRequest{
		Path: t.checkpoint, Container: t.container, Image: t.image, Rootfs: t.rootfs,
	})
	var cerr *connect.Error
	switch {
	case err == nil:
		return resp, nil
	case errors.As(err, &cerr) && connect.IsWireError(cerr):
		return nil, errors.New(cerr.Message())
	default:
		return nil, fmt.Errorf("cannot reach the cedana daemon at %s: is it running (`cedana daemon start`)? %w", cfg.Address, err)
	}
}

// startRestored answers `start <id>` for a container the handler restored: it runs already, so
// start succeeds once runc says it is running. It reports false, and does nothing, for any
// other container.
func startRestored(runc string, inv invocation, id string) bool {
	marker := filepath.Join(cmp.Or(inv.root, defaultRoot), id, restoredMarker)
	if _, err := os.Stat(marker); err != nil {
		return false
	}
	out, err := exec.Command(runc, append(append([]string{}, inv.globals...), "state", id)...).Output()
	var state struct {
		Status string `json:"status"`
	}
	if err != nil || json.Unmarshal(out, &state) != nil || state.Status != "running" {
		return false // runc's start says what is wrong
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return true
}

// report writes msg where the shim reads runc's errors, the --log file in runc's log format,
// and to stderr.
func report(inv invocation, stderr io.Writer, msg string) {
	fmt.Fprintln(stderr, msg)
	if inv.log == "" {
		return
	}
	f, err := os.OpenFile(inv.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintf(stderr, "%s: write runc's log %s: %v\n", k8s.WrapperName, inv.log, err)
		return
	}
	defer f.Close()
	if err := runccli.WriteError(f, inv.logFormat, msg, time.Now()); err != nil {
		fmt.Fprintf(stderr, "%s: write runc's log %s: %v\n", k8s.WrapperName, inv.log, err)
	}
}
