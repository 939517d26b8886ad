package e2e

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// podCountScript counts into /tmp/count, like countScript but ten times faster, and writes the
// kernel's uptime (10 ms resolution, the same clock in every container) into /tmp/up at each
// count: the last uptime a checkpoint's writable layer holds says when the container was frozen.
const podCountScript = `i=0; while true; do i=$((i+1)); printf "%08d\n" $i 1<>/tmp/count; read up _ </proc/uptime; echo $up 1<>/tmp/up; sleep 0.01; done`

// kubePod makes containers in containerd's k8s.io namespace as the CRI makes a pod's: labelled
// by the kubelet, or (crictl) with the CRI's annotations only.
type kubePod struct {
	c             *containerdDaemon
	name, ns, uid string
	kubeletLabels bool
}

// meta is the labels or annotations that make a container part of the pod.
func (p kubePod) meta(container, kind string) []string {
	if p.kubeletLabels {
		opts := []string{
			"--label", "io.kubernetes.pod.name=" + p.name, "--label", "io.kubernetes.pod.namespace=" + p.ns,
			"--label", "io.kubernetes.pod.uid=" + p.uid, "--label", "io.cri-containerd.kind=" + kind,
		}
		if container != "" {
			opts = append(opts, "--label", "io.kubernetes.container.name="+container)
		}
		return opts
	}
	opts := []string{
		"--annotation", "io.kubernetes.cri.sandbox-name=" + p.name, "--annotation", "io.kubernetes.cri.sandbox-namespace=" + p.ns,
		"--annotation", "io.kubernetes.cri.sandbox-uid=" + p.uid, "--annotation", "io.kubernetes.cri.container-type=" + kind,
		"--annotation", "io.kubernetes.cri.image-name=" + testImage,
	}
	if container != "" {
		opts = append(opts, "--annotation", "io.kubernetes.cri.container-name="+container)
	}
	return opts
}

// sandbox starts the pod's sandbox container, which pod dumps never take.
func (p kubePod) sandbox(t *testing.T, id string) int {
	t.Helper()
	return ctrRunWith(t, p.c, "k8s.io", id, "while true; do sleep 1; done", p.meta("", "sandbox")...)
}

// app starts an app container of the pod named container, running script (podCountScript when
// empty), with both the kubelet's labels and the CRI's annotations when both is set.
func (p kubePod) app(t *testing.T, id, container, script string, both bool) int {
	t.Helper()
	opts := p.meta(container, "container")
	if both {
		other := p
		other.kubeletLabels = !p.kubeletLabels
		opts = append(opts, other.meta(container, "container")...)
	}
	if script == "" {
		script = podCountScript
	}
	return ctrRunWith(t, p.c, "k8s.io", id, script, opts...)
}

// podResult parses `cedana dump pod -o json`.
func podResult(t *testing.T, r result) *daemonv1.DumpPodResponse {
	t.Helper()
	require.Equal(t, 0, r.code, r.String())
	resp := &daemonv1.DumpPodResponse{}
	require.NoError(t, protojson.Unmarshal([]byte(r.stdout), resp), r.stdout)
	return resp
}

// readManifest reads a local pod checkpoint's pod.json.
func readManifest(t *testing.T, dir string) *daemonv1.PodCheckpoint {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "pod.json"))
	require.NoError(t, err)
	m := &daemonv1.PodCheckpoint{}
	require.NoError(t, protojson.Unmarshal(data, m), string(data))
	return m
}

// frozenUptime reads the uptime, in hundredths of a second, that a container's checkpoint
// (a directory) holds in its writable layer's /tmp/up: when podCountScript was frozen.
func frozenUptime(t *testing.T, entry string) int {
	t.Helper()
	f, err := os.Open(filepath.Join(entry, "rootfs-diff.tar"))
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no tmp/up", entry)
		}
		require.NoError(t, err)
		if strings.TrimPrefix(h.Name, "./") != "tmp/up" {
			continue
		}
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		whole, frac, _ := strings.Cut(strings.TrimSpace(string(data)), ".")
		n, err := strconv.Atoi(whole + frac)
		require.NoError(t, err, "uptime %q", data)
		return n
	}
}
