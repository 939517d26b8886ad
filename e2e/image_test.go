package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/require"
)

// imageNamespace is the containerd namespace the image test runs its container in.
const imageNamespace = "img-e2e"

// imageRef is what the image under test is built and imported as.
const imageRef = "docker.io/cedana/cedana:e2e"

var (
	builtImage     string // OCI layout tarball, built once per run by buildImage
	builtImageErr  error
	buildImageOnce sync.Once
)

// buildImage builds cedana's image as `just image` does (hack/image), from the e2e binary, once.
func buildImage(t *testing.T) string {
	t.Helper()
	buildImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cedana-e2e-image-")
		if err != nil {
			builtImageErr = err
			return
		}
		builtImage = filepath.Join(dir, "cedana-image.tar")
		out, err := exec.Command("go", "run", "../hack/image", "-binary", cedanaBin, "-o", builtImage, "-ref", imageRef,
			"-version", "e2e").CombinedOutput()
		if err != nil {
			builtImageErr = fmt.Errorf("hack/image: %w\n%s", err, out)
		}
	})
	require.NoError(t, builtImageErr)
	return builtImage
}

// TestImageDaemonDumpsHostProcess runs cedana's image the way the DaemonSet does: imported into
// containerd, privileged, in the host's PID and network namespaces, its entrypoint unchanged. The
// host's cedana client then dumps a process of the host through the containerised daemon's socket,
// the process is gone, and the restore brings it back counting on.
func TestImageDaemonDumpsHostProcess(t *testing.T) {
	c := needContainerd(t, "default")
	const ns, id = imageNamespace, "img-daemon"
	tarball := buildImage(t)
	out, err := c.ctr(ns, "image", "import", tarball)
	require.NoError(t, err, out)
	out, err = c.ctr(ns, "image", "ls", "-q")
	require.NoError(t, err, out)
	require.Contains(t, out, imageRef, "ctr image import names the image from the tarball alone")

	dir := t.TempDir()
	socket, ckDir := filepath.Join(dir, "run", "cedana.sock"), filepath.Join(dir, "checkpoints")
	env := []string{
		"CEDANA_ADDRESS=" + socket, "CEDANA_PROTOCOL=unix", "CEDANA_CHECKPOINT_DIR=" + ckDir, "CEDANA_LOG_LEVEL=debug",
		"CEDANA_DB_PATH=" + filepath.Join(dir, "state", "cedana.db"), "CEDANA_JOBS_LOG_DIR=" + filepath.Join(dir, "logs"),
		"CRIU_FAULT=130",
	}
	logFile := filepath.Join(dir, "daemon.log")
	task := runImage(t, c.address, ns, id, logFile, env, dir)
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(logFile)
			t.Logf("containerised daemon's log:\n%s", data)
		}
	})

	clientEnv := append(os.Environ(), "CEDANA_ADDRESS="+socket, "CEDANA_PROTOCOL=unix", "CEDANA_CONFIG_DIR="+dir)
	require.Eventually(t, func() bool {
		conn, err := net.Dial("unix", socket)
		if err == nil {
			conn.Close()
		}
		return err == nil || !taskRunning(task)
	}, 30*time.Second, 100*time.Millisecond, "the containerised daemon did not listen on %s", socket)
	require.True(t, taskRunning(task), "the containerised daemon exited")

	w := startCounter(t, true)
	r := runCmd(t, cedanaBin, clientEnv, "dump", "process", strconv.Itoa(w.pid))
	require.Equal(t, 0, r.code, r.String())
	m := dumpedTo.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.String())
	w.waitExited(t)
	at := requireStopped(t, w.counter)
	childAt := readCounter(w.child)
	pids := readCheckpoint(t, m[1]).Pids
	require.Eventually(t, func() bool {
		reapAll(pids...) // the subshell's orphan is re-parented to the test, a subreaper
		for _, pid := range pids {
			if !pidGone(pid) {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "the dumped processes are still there")

	r = runCmd(t, cedanaBin, clientEnv, "restore", "process", "--path", m[1])
	require.Equal(t, 0, r.code, r.String())
	rm := restored.FindStringSubmatch(r.stdout)
	require.NotNil(t, rm, r.String())
	w.restored, _ = strconv.Atoi(rm[1])
	requireCounting(t, w.counter, at)
	requireCounting(t, w.child, childAt)
}

// runImage creates and starts container id of imageRef in namespace ns as the DaemonSet runs it:
// privileged, host PID and network, the image's entrypoint, env added, and hostDir (where the
// daemon's socket, state and checkpoints are) bind-mounted at the same path. The task is killed
// and the container removed when the test ends.
func runImage(t *testing.T, address, ns, id, logFile string, env []string, hostDir string) containerd.Task {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	client, err := containerd.New(address)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	img, err := client.GetImage(ctx, imageRef)
	require.NoError(t, err)
	require.NoError(t, img.Unpack(ctx, ""))
	_ = client.ContainerService().Delete(ctx, id) // a leftover of an interrupted run
	ctr, err := client.NewContainer(ctx, id, containerd.WithNewSnapshot(id+"-snapshot", img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices,
			oci.WithHostNamespace(specs.PIDNamespace), oci.WithHostNamespace(specs.NetworkNamespace),
			oci.WithEnv(env),
			// The image's entrypoint, with the host's mount namespace named through this test's
			// PID rather than PID 1: this machine's PID 1 holds a capability the tests lack
			// (CAP_SYS_RESOURCE), which makes its /proc/1/ns unreadable to them.
			oci.WithProcessArgs("/usr/bin/cedana", "daemon", "start", "--host-mount-ns", fmt.Sprintf("/proc/%d/ns/mnt", os.Getpid())),
			oci.WithMounts([]specs.Mount{{Type: "bind", Source: hostDir, Destination: hostDir, Options: []string{"rbind", "rw"}}})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = ctr.Delete(ctx, containerd.WithSnapshotCleanup) })
	task, err := ctr.NewTask(ctx, cio.LogFile(logFile))
	require.NoError(t, err)
	exited, err := task.Wait(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = task.Kill(ctx, 9)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
		}
		_, _ = task.Delete(ctx)
	})
	require.NoError(t, task.Start(ctx))
	return task
}

// taskRunning reports whether task is running.
func taskRunning(task containerd.Task) bool {
	st, err := task.Status(namespaces.WithNamespace(context.Background(), imageNamespace))
	return err == nil && st.Status == containerd.Running
}
