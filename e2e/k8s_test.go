package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/k8s"
)

// TestK8sSetupDestroy: the real binary's `k8s setup`, run twice (the second time with --restart,
// which then has nothing to restart) on a containerd 1.7 configuration with a runtime of its own,
// leaves one cedana runtime entry and a symlink to itself; `k8s destroy`, twice, gives the
// configuration back byte for byte and removes the symlink.
func TestK8sSetupDestroy(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "config.toml")
	orig := "version = 2\n# the node's own settings\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\""
	require.NoError(t, os.WriteFile(config, []byte(orig), 0o640))
	flags := []string{"--containerd-config", config, "--bin-dir", dir}
	link := filepath.Join(dir, k8s.WrapperName)

	r := runCmd(t, cedanaBin, os.Environ(), append([]string{"k8s", "setup"}, flags...)...)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "restart containerd")
	// With nothing to change, --restart leaves containerd alone (the DaemonSet's init container
	// runs it at every start): no systemd runs this machine, so a restart would fail.
	r = runCmd(t, cedanaBin, os.Environ(), append([]string{"k8s", "setup", "--restart"}, flags...)...)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "already there")
	assert.NotContains(t, r.stdout, "restart")
	data, err := os.ReadFile(config)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(data), `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cedana]`), "%s", data)
	assert.Contains(t, string(data), `BinaryName = "`+link+`"`)
	target, err := os.Readlink(link)
	require.NoError(t, err)
	self, err := filepath.EvalSymlinks(cedanaBin)
	require.NoError(t, err)
	assert.Equal(t, self, target)

	for range 2 {
		r = runCmd(t, cedanaBin, os.Environ(), append([]string{"k8s", "destroy"}, flags...)...)
		require.Equal(t, 0, r.code, r.String())
		data, err = os.ReadFile(config)
		require.NoError(t, err)
		assert.Equal(t, orig, string(data), "destroy restored the configuration byte for byte")
		info, err := os.Stat(config)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o640), info.Mode().Perm())
		_, err = os.Lstat(link)
		require.ErrorIs(t, err, os.ErrNotExist)
	}
	assert.Equal(t, []string{"config.toml"}, entries(dir), "nothing else left behind")

	r = runCmd(t, cedanaBin, os.Environ(), "k8s", "setup", "--containerd-config", filepath.Join(dir, "none", "config.toml"), "--bin-dir", dir)
	requireOneLineError(t, r, "is containerd installed", "--containerd-config")
}

// TestK8sSetupCopyBinary: `k8s setup --copy-binary`, as the DaemonSet's init container runs it
// (with --host-mount-ns naming its own mount namespace here, a no-op), copies the
// binary into --bin-dir, links cedana-runc to the copy, and leaves an identical copy alone.
func TestK8sSetupCopyBinary(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "config.toml")
	args := []string{"k8s", "setup", "--copy-binary", "--host-mount-ns", "/proc/self/ns/mnt", "--containerd-config", config, "--bin-dir", dir}
	copied := filepath.Join(dir, k8s.BinaryName)

	r := runCmd(t, cedanaBin, os.Environ(), args...)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "binary "+copied+": copied")
	want, err := os.ReadFile(cedanaBin)
	require.NoError(t, err)
	got, err := os.ReadFile(copied)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "the copy is the binary")
	info, err := os.Stat(copied)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), info.Mode().Perm())
	target, err := os.Readlink(filepath.Join(dir, k8s.WrapperName))
	require.NoError(t, err)
	assert.Equal(t, copied, target)

	r = runCmd(t, cedanaBin, os.Environ(), args...)
	require.Equal(t, 0, r.code, r.String())
	assert.Contains(t, r.stdout, "binary "+copied+": already current")
	assert.Contains(t, r.stdout, "already there")
}

// TestK8sRuntimeHandlerPod runs a pod through the CRI as the kubelet would, in the cedana runtime
// handler (cedana-runc in runc's place) and, for comparison, in containerd's default runc: the
// container runs, crictl logs shows its output, crictl exec works, and the pod stops and goes.
// With the symlink gone, a pod in the cedana runtime cannot start: the shim did run it.
func TestK8sRuntimeHandlerPod(t *testing.T) {
	n := needCRI(t, nil)
	for _, handler := range []string{k8s.RuntimeHandler, ""} {
		t.Run("handler="+handler, func(t *testing.T) {
			n := n.forTest(t)
			pod := criPod{Name: "web" + handler, Namespace: "default", UID: "uid-web" + handler, RuntimeHandler: handler}
			s := n.runPod(pod)
			info := n.inspectPod(s.ID)
			assert.Equal(t, "SANDBOX_READY", info.Status.State)
			if handler != "" {
				assert.Equal(t, handler, info.Info.RuntimeHandler)
				assert.Equal(t, n.symlink(), info.Info.RuntimeOptions.BinaryName)
			}
			id := n.runContainer(s, criContainer{
				Name: "counter", Command: []string{"/bin/sh", "-c", `i=0; while :; do i=$((i+1)); echo "count $i"; sleep 0.1; done`},
			})
			var found bool
			for _, c := range n.ps() {
				if c.ID == id {
					found = true
					assert.Equal(t, "CONTAINER_RUNNING", c.State)
					assert.Equal(t, "counter", c.Labels["io.kubernetes.container.name"])
					assert.Equal(t, pod.UID, c.Labels["io.kubernetes.pod.uid"])
				}
			}
			assert.True(t, found, "crictl ps lists the container")
			st := n.inspect(id)
			assert.Positive(t, st.Info.Pid)
			assert.Equal(t, "container", st.Info.RuntimeSpec.Annotations["io.kubernetes.cri.container-type"])
			assert.Equal(t, pod.UID, st.Info.RuntimeSpec.Annotations["io.kubernetes.cri.sandbox-uid"])
			require.Eventually(t, func() bool { return strings.Contains(n.logs(id), "count 3") }, 10*time.Second, 50*time.Millisecond,
				"crictl logs: %s", n.logs(id))
			out, err := n.exec(id, "cat", "/etc/passwd")
			require.NoError(t, err)
			assert.Contains(t, out, "root:x:0:0")
			n.stopPod(s.ID)
			n.waitState(id, "CONTAINER_EXITED")
			n.removePod(s.ID)
			assert.Empty(t, n.mustCrictl("pods", "-q", "--id", s.ID))
		})
	}

	require.NoError(t, os.Remove(n.symlink()))
	_, err := n.tryRunPod(criPod{Name: "nosymlink", Namespace: "default", UID: "uid-nosymlink", RuntimeHandler: k8s.RuntimeHandler})
	require.Error(t, err, "a pod in the cedana runtime started without cedana-runc")
	assert.Contains(t, err.Error(), k8s.WrapperName)
}
