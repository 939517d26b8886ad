package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/internal/testutil"
	"github.com/cedana/cedana/k8s"
)

// crictlBin is where hack/install-crictl.sh (just deps) puts crictl.
const crictlBin = "/opt/cedana/bin/crictl"

// pauseImage is the sandbox image of the CRI containerd: busybox sleeping forever, imported under
// the name containerd 1.7 asks for by default.
const pauseImage = "registry.k8s.io/pause:3.9"

// criNamespace is the containerd namespace the CRI plugin keeps its pods, containers and images in.
const criNamespace = "k8s.io"

// criNode is a Kubernetes node without its kubelet: a containerd of its own with the CRI plugin
// enabled, the cedana runtime handler installed by `cedana k8s setup`, the test and pause images
// imported, driven with crictl as the kubelet drives the CRI. Pods use the host's network, so no
// CNI plugin is needed. Everything goes when the test ends.
type criNode struct {
	t       *testing.T
	dir     string
	address string // containerd's socket: the CRI endpoint, and --containerd-address for cedana
	config  string // containerd's configuration, which k8s setup edited
	binDir  string // where k8s setup put the cedana-runc symlink
	logDir  string // the pods' log directories, as the kubelet's /var/log/pods
	cmd     *exec.Cmd
	log     *testutil.Buffer
	exited  chan struct{}
}

// needCRI starts a criNode for the test. The runtime handler reaches d (cedana-runc inherits
// containerd's CEDANA_* environment), or no daemon when d is nil. Without containerd or crictl
// the test skips, or fails under CI=true.
func needCRI(t *testing.T, d *daemon) *criNode {
	t.Helper()
	requireE2E(t)
	for _, bin := range []string{filepath.Join(containerdBin, "containerd"), crictlBin} {
		if _, err := os.Stat(bin); err != nil {
			testutil.SkipUnlessCI(t, fmt.Sprintf("%s is not installed (`just deps` installs it): %v", filepath.Base(bin), err))
		}
	}
	testutil.RequireTool(t, "runc")
	dir, err := os.MkdirTemp("", "cedana-e2e-cri-")
	require.NoError(t, err)
	n := &criNode{
		t: t, dir: dir, address: filepath.Join(dir, "containerd.sock"), config: filepath.Join(dir, "config.toml"),
		binDir: filepath.Join(dir, "bin"), logDir: filepath.Join(dir, "pods"), log: &testutil.Buffer{}, exited: make(chan struct{}),
	}
	t.Cleanup(n.stop)
	for _, sub := range []string{n.binDir, n.logDir, filepath.Join(dir, "cni")} {
		require.NoError(t, os.MkdirAll(sub, 0o755))
	}
	require.NoError(t, os.WriteFile(n.config, []byte(criConfig(n)), 0o600))
	r := runCmd(t, cedanaBin, os.Environ(), "k8s", "setup", "--containerd-config", n.config, "--bin-dir", n.binDir)
	require.Equal(t, 0, r.code, "cedana k8s setup: %s", r)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "crictl.yaml"), []byte(fmt.Sprintf(
		"runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\npull-image-on-create: false\n", n.address, n.address)), 0o600))

	n.cmd = exec.Command(filepath.Join(containerdBin, "containerd"), "--config", n.config)
	n.cmd.Env = append(os.Environ(), "PATH="+containerdBin+":"+os.Getenv("PATH"), "CRIU_FAULT=130")
	if d != nil {
		for _, kv := range d.env {
			if strings.HasPrefix(kv, "CEDANA_") {
				n.cmd.Env = append(n.cmd.Env, kv)
			}
		}
	}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, n.cmd.Start())
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	require.Eventually(t, func() bool {
		select {
		case <-n.exited:
			t.Fatalf("containerd exited:\n%s", n.log.String())
		default:
		}
		conn, err := net.Dial("unix", n.address)
		if err != nil {
			return false
		}
		conn.Close()
		_, err = n.crictl("info")
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "containerd's CRI did not answer on %s", n.address)

	for ref, cmd := range map[string][]string{testImage: {"/bin/sh"}, pauseImage: {"/bin/sleep", "infinity"}} {
		tarball := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
		require.NoError(t, writeTestImage(tarball, ref, cmd...))
		out, err := n.ctr("image", "import", tarball)
		require.NoError(t, err, "ctr image import %s: %s", ref, out)
		require.Eventually(t, func() bool { _, err := n.crictl("inspecti", ref); return err == nil },
			10*time.Second, 50*time.Millisecond, "the CRI does not see the imported image %s", ref)
	}
	return n
}

// criConfig is the CRI containerd's configuration, before k8s setup adds the cedana runtime.
// The sandboxes' processes lack CAP_SYS_RESOURCE here, so the CRI must not lower their
// oom_score_adj (restrict_oom_score_adj).
func criConfig(n *criNode) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(n.dir, "root"), filepath.Join(n.dir, "state"), n.address, n.address+".ttrpc", pauseImage,
		filepath.Join(n.dir, "cni"), filepath.Join(n.dir, "cni"))
}

// stop removes every pod, stops containerd and removes its directory; with a failed test, it logs
// containerd's log.
func (n *criNode) stop() {
	if n.cmd != nil && n.cmd.Process != nil {
		select {
		case <-n.exited:
		default:
			out, _ := n.crictl("pods", "-q")
			for _, id := range strings.Fields(out) {
				_, _ = n.crictl("stopp", id)
				_, _ = n.crictl("rmp", "-f", id)
			}
			testutil.Stop(n.cmd.Process, n.exited, 15*time.Second)
		}
	}
	if n.t.Failed() {
		n.t.Logf("CRI containerd log:\n%s", n.log.String())
	}
	for _, sub := range []string{"root", "state"} {
		_ = exec.Command("umount", "-R", filepath.Join(n.dir, sub)).Run()
	}
	_ = os.RemoveAll(n.dir)
}

// forTest is n for a subtest of the test that started it: the helpers fail t.
func (n *criNode) forTest(t *testing.T) *criNode {
	sub := *n
	sub.t = t
	return &sub
}

// crictl runs crictl against the node's CRI and returns its standard output; the error holds its
// standard error (crictl warns there, e.g. that a pod has no cgroup_parent).
func (n *criNode) crictl(args ...string) (string, error) {
	cmd := n.crictlCmd(args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("crictl %s: %w: %s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

// crictlCmd is crictl with args, against the node's CRI.
func (n *criNode) crictlCmd(args ...string) *exec.Cmd {
	return exec.Command(crictlBin, append([]string{"--config", filepath.Join(n.dir, "crictl.yaml")}, args...)...)
}

// mustCrictl is crictl that fails the test on an error and returns the trimmed output.
func (n *criNode) mustCrictl(args ...string) string {
	n.t.Helper()
	out, err := n.crictl(args...)
	require.NoError(n.t, err)
	return strings.TrimSpace(out)
}

// ctr runs ctr against the node's containerd in the CRI's namespace.
func (n *criNode) ctr(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(containerdBin, "ctr"), append([]string{"--address", n.address, "-n", criNamespace}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// criPod is a pod as the kubelet asks the CRI for its sandbox.
type criPod struct {
	Name, Namespace, UID string
	Annotations          map[string]string
	// RuntimeHandler is the RuntimeClass's handler: "" for containerd's default runtime (runc),
	// or k8s.RuntimeHandler.
	RuntimeHandler string
}

// criSandbox is a pod sandbox the node runs.
type criSandbox struct {
	ID     string
	Pod    criPod
	config string // its pod config file, which crictl create needs too
}

// criContainer is a container of a pod as the kubelet asks the CRI for one.
type criContainer struct {
	Name        string
	Image       string // testImage when ""
	Command     []string
	Annotations map[string]string
}

// kubeletLabels are the labels the kubelet puts on a pod, and on each of its containers with the
// container's name.
func kubeletLabels(p criPod, container string) map[string]string {
	labels := map[string]string{"io.kubernetes.pod.name": p.Name, "io.kubernetes.pod.namespace": p.Namespace, "io.kubernetes.pod.uid": p.UID}
	if container != "" {
		labels["io.kubernetes.container.name"] = container
	}
	return labels
}

// runPod runs p's sandbox (crictl runp) on the host's network.
func (n *criNode) runPod(p criPod) *criSandbox {
	n.t.Helper()
	s, err := n.tryRunPod(p)
	require.NoError(n.t, err)
	return s
}

// tryRunPod is runPod returning crictl's failure.
func (n *criNode) tryRunPod(p criPod) (*criSandbox, error) {
	n.t.Helper()
	config := map[string]any{
		"metadata":      map[string]any{"name": p.Name, "namespace": p.Namespace, "uid": p.UID, "attempt": 0},
		"labels":        kubeletLabels(p, ""),
		"annotations":   p.Annotations,
		"log_directory": filepath.Join(n.logDir, fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID)),
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
	}
	s := &criSandbox{Pod: p, config: n.writeJSON("pod-"+p.UID, config)}
	args := []string{"runp"}
	if p.RuntimeHandler != "" {
		args = append(args, "--runtime", p.RuntimeHandler)
	}
	out, err := n.crictl(append(args, s.config)...)
	s.ID = strings.TrimSpace(out)
	return s, err
}

// createContainer creates c in the sandbox s (crictl create) and returns its ID.
func (n *criNode) createContainer(s *criSandbox, c criContainer) string {
	n.t.Helper()
	image := c.Image
	if image == "" {
		image = testImage
	}
	config := map[string]any{
		"metadata":    map[string]any{"name": c.Name, "attempt": 0},
		"image":       map[string]any{"image": image},
		"command":     c.Command,
		"labels":      kubeletLabels(s.Pod, c.Name),
		"annotations": c.Annotations,
		"log_path":    c.Name + "/0.log",
	}
	return n.mustCrictl("create", "--no-pull", s.ID, n.writeJSON("container-"+s.Pod.UID+"-"+c.Name, config), s.config)
}

// runContainer creates and starts c in s, waits until it runs, and returns its ID.
func (n *criNode) runContainer(s *criSandbox, c criContainer) string {
	n.t.Helper()
	id := n.createContainer(s, c)
	n.mustCrictl("start", id)
	n.waitState(id, "CONTAINER_RUNNING")
	return id
}

// waitState waits until container id is in state (CONTAINER_RUNNING, CONTAINER_EXITED, ...).
func (n *criNode) waitState(id, state string) {
	n.t.Helper()
	require.Eventually(n.t, func() bool { return n.inspect(id).Status.State == state }, 30*time.Second, 50*time.Millisecond,
		"container %s is not %s: %+v", id, state, n.inspect(id).Status)
}

// criStatus is what crictl inspect says of a container.
type criStatus struct {
	Status struct {
		ID          string            `json:"id"`
		State       string            `json:"state"`
		ExitCode    int               `json:"exitCode"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		LogPath     string            `json:"logPath"`
	} `json:"status"`
	Info struct {
		SandboxID   string `json:"sandboxID"`
		Pid         int    `json:"pid"`
		RuntimeSpec struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"runtimeSpec"`
	} `json:"info"`
}

// inspect is crictl inspect of container id (a zero criStatus when crictl fails).
func (n *criNode) inspect(id string) criStatus {
	var s criStatus
	if out, err := n.crictl("inspect", "-o", "json", id); err == nil {
		_ = json.Unmarshal([]byte(out), &s)
	}
	return s
}

// criSandboxStatus is what crictl inspectp says of a pod sandbox.
type criSandboxStatus struct {
	Status struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"status"`
	Info struct {
		Pid            int    `json:"pid"`
		RuntimeHandler string `json:"runtimeHandler"`
		RuntimeType    string `json:"runtimeType"`
		RuntimeOptions struct {
			BinaryName string `json:"binary_name"`
		} `json:"runtimeOptions"`
	} `json:"info"`
}

// inspectPod is crictl inspectp of sandbox id.
func (n *criNode) inspectPod(id string) criSandboxStatus {
	n.t.Helper()
	var s criSandboxStatus
	require.NoError(n.t, json.Unmarshal([]byte(n.mustCrictl("inspectp", "-o", "json", id)), &s))
	return s
}

// criPSEntry is a container in crictl ps's list.
type criPSEntry struct {
	ID           string `json:"id"`
	PodSandboxID string `json:"podSandboxId"`
	Metadata     struct {
		Name string `json:"name"`
	} `json:"metadata"`
	State  string            `json:"state"`
	Labels map[string]string `json:"labels"`
}

// ps lists the node's containers, exited ones included (crictl ps -a).
func (n *criNode) ps() []criPSEntry {
	n.t.Helper()
	var list struct {
		Containers []criPSEntry `json:"containers"`
	}
	require.NoError(n.t, json.Unmarshal([]byte(n.mustCrictl("ps", "-a", "-o", "json")), &list))
	return list.Containers
}

// logs is crictl logs of container id: what it wrote on stdout and stderr.
func (n *criNode) logs(id string) string {
	n.t.Helper()
	out, err := n.crictlCmd("logs", id).CombinedOutput()
	require.NoError(n.t, err, "crictl logs %s: %s", id, out)
	return string(out)
}

// exec runs cmd in container id (crictl exec) and returns its output.
func (n *criNode) exec(id string, cmd ...string) (string, error) {
	return n.crictl(append([]string{"exec", id}, cmd...)...)
}

// stopPod stops sandbox id and its containers (crictl stopp).
func (n *criNode) stopPod(id string) {
	n.t.Helper()
	n.mustCrictl("stopp", id)
}

// removePod removes sandbox id and its containers (crictl rmp).
func (n *criNode) removePod(id string) {
	n.t.Helper()
	n.mustCrictl("rmp", id)
}

// symlink is the runtime handler's cedana-runc, which k8s setup made.
func (n *criNode) symlink() string { return filepath.Join(n.binDir, k8s.WrapperName) }

// writeJSON writes v as JSON into the node's directory and returns the file's path.
func (n *criNode) writeJSON(name string, v any) string {
	n.t.Helper()
	data, err := json.Marshal(v)
	require.NoError(n.t, err)
	path := filepath.Join(n.dir, name+".json")
	require.NoError(n.t, os.WriteFile(path, data, 0o600))
	return path
}
