package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage/storagetest"
)

// podHandler is a containerd and a cedana daemon set up for pod restores through the runtime
// handler: the daemon listens where the handler, run by containerd's shim, looks for it, and
// handler is a symlink cedana-runc to the cedana binary, for `ctr run --runc-binary`.
type podHandler struct {
	c       *containerdDaemon
	d       *daemon
	handler string
	scratch string // the daemon's temp dir
}

func newPodHandler(t *testing.T, extraEnv ...string) *podHandler {
	t.Helper()
	c := needContainerd(t, "default")
	p := &podHandler{c: c, scratch: t.TempDir()}
	p.d = startDaemon(t, cedanaBin, append(extraEnv, "CEDANA_ADDRESS="+c.cedanaSocket, "CEDANA_CHECKPOINT_TEMP_DIR="+p.scratch)...)
	p.handler = filepath.Join(t.TempDir(), "cedana-runc")
	require.NoError(t, os.Symlink(cedanaBin, p.handler))
	return p
}

// run starts container id with ctr through the handler, with the CRI's annotations for container
// name and image, cedana.io/restore=checkpoint when it is not "", and its output in log.
func (p *podHandler) run(t *testing.T, id, checkpoint, name, image, log, script string) (string, error) {
	t.Helper()
	args := []string{
		"run", "-d", "--runc-binary", p.handler, "--log-uri", "file://" + log,
		"--annotation", "io.kubernetes.cri.container-name=" + name, "--annotation", "io.kubernetes.cri.image-name=" + image,
	}
	if checkpoint != "" {
		args = append(args, "--annotation", "cedana.io/restore="+checkpoint)
	}
	t.Cleanup(func() { removeContainer(p.c, "default", id) })
	return p.c.ctr("default", append(args, testImage, id, "/bin/sh", "-c", script)...)
}

// dumpCounter runs a counting container that wrote /tmp/note, and dumps it with its writable
// layer into dir as name (extra: more dump flags). It returns the count just before the dump and
// the dump's path.
func (p *podHandler) dumpCounter(t *testing.T, id, dir, name string, extra ...string) (before int, path string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), id+".log")
	out, err := p.c.ctr("default", "run", "-d", "--log-uri", "file://"+log, testImage, id, "/bin/sh", "-c",
		"echo written-before-the-dump > /tmp/note; "+countScript)
	require.NoError(t, err, "ctr run: %s", out)
	t.Cleanup(func() { removeContainer(p.c, "default", id) })
	var pid int
	require.Eventually(t, func() bool {
		pid = p.c.taskPID("default", id)
		return pid > 0 && readCounter(containerCounter(pid)) >= 2
	}, 10*time.Second, 20*time.Millisecond, "container %s did not start counting", id)
	before = readCounter(containerCounter(pid))
	r := p.d.cli(append([]string{"dump", "containerd", id, "--containerd-address=" + p.c.address, "--rootfs", "--dir", dir, "--name", name, "-o", "json"}, extra...)...)
	require.Equal(t, 0, r.code, r.String())
	m := regexp.MustCompile(`"path":\s*"([^"]+)"`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	return before, m[1]
}

// podManifest is pod.json for containers, as `cedana dump pod` writes it.
func podManifest(t *testing.T, containers ...*daemonv1.PodContainer) []byte {
	t.Helper()
	data, err := protojson.Marshal(&daemonv1.PodCheckpoint{Name: "pod", Namespace: "default", Containers: containers})
	require.NoError(t, err)
	return data
}

// requireRestored checks container id, restored through the handler: ctr lists its task running,
// it counts on from before, it has the file written before the dump, and its output after the
// restore reaches log. It returns the task's PID.
func requireRestored(t *testing.T, c *containerdDaemon, id string, before int, log string) int {
	t.Helper()
	pid := c.taskPID("default", id)
	require.Positive(t, pid, "ctr task ls shows %s RUNNING", id)
	requireCounting(t, containerCounter(pid), before)
	note, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/note", pid))
	require.NoError(t, err, "the file written before the dump is in the restored rootfs")
	assert.Equal(t, "written-before-the-dump\n", string(note))
	after := readCounter(containerCounter(pid))
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile(log)
		for _, m := range regexp.MustCompile(`count (\d+)`).FindAllStringSubmatch(string(data), -1) {
			if n, _ := strconv.Atoi(m[1]); n > after {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "output written after the restore reaches the new task's log %s", log)
	return pid
}

// requireNoRuncContainer: the shim's runc root lists no container id.
func requireNoRuncContainer(t *testing.T, id string) {
	t.Helper()
	out, err := exec.Command("runc", "--root", "/run/containerd/runc/default", "list", "-q").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.NotContains(t, strings.Fields(string(out)), id, "no runc container %s is left", id)
}

// TestPodRestoreThroughHandler: a container dumped with its writable layer into a pod checkpoint
// (a directory with pod.json) is created again by ctr through the runtime handler with the
// annotation cedana.io/restore: it counts on, has its files, writes into the new task's log, and
// ctr kills and removes it. Bad annotations fail `ctr run` with the checkpoint and the cause, and
// leave nothing behind; without the annotation the handler is runc.
func TestPodRestoreThroughHandler(t *testing.T) {
	p := newPodHandler(t)
	pod := filepath.Join(t.TempDir(), "pod")
	require.NoError(t, os.Mkdir(pod, 0o755))
	before, path := p.dumpCounter(t, "pod-app", pod, "app")
	require.Equal(t, filepath.Join(pod, "app"), path)
	// A second entry without the writable layer: the same images, less rootfs-diff.tar.
	require.NoError(t, exec.Command("cp", "-a", path, filepath.Join(pod, "nolayer")).Run())
	require.NoError(t, os.Remove(filepath.Join(pod, "nolayer", "rootfs-diff.tar")))
	require.NoError(t, os.WriteFile(filepath.Join(pod, "pod.json"), podManifest(t,
		&daemonv1.PodContainer{Name: "app", Image: testImage, Id: "pod-app", Entry: "app"},
		&daemonv1.PodContainer{Name: "nolayer", Image: testImage, Id: "pod-app", Entry: "nolayer"}), 0o600))

	log := filepath.Join(t.TempDir(), "restored.log")
	start := time.Now()
	out, err := p.run(t, "pod-app-restored", pod, "app", testImage, log, "exit 3")
	require.NoError(t, err, "ctr run through the handler: %s", out)
	t.Logf("ctr run with the restore took %s", time.Since(start))
	pid := requireRestored(t, p.c, "pod-app-restored", before, log)
	assert.NoFileExists(t, filepath.Join("/run/containerd/runc/default", "pod-app-restored", "cedana-restored"), "start consumed the marker")

	// ctr owns it: kill and remove work.
	out, err = p.c.ctr("default", "task", "kill", "-s", "KILL", "pod-app-restored")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	out, err = p.c.ctr("default", "task", "rm", "pod-app-restored")
	require.NoError(t, err, out)
	out, err = p.c.ctr("default", "container", "rm", "pod-app-restored")
	require.NoError(t, err, out)

	bad := []struct {
		name, id, checkpoint, container, image string
		want                                   []string
	}{
		{
			"no such checkpoint", "pod-bad-missing", filepath.Join(pod, "nope"), "app", testImage,
			[]string{"pod checkpoint " + filepath.Join(pod, "nope"), "no such checkpoint"},
		},
		{
			"no entry", "pod-bad-entry", pod, "other", testImage,
			[]string{"pod checkpoint " + pod, "no entry for container other", "app, nolayer"},
		},
		{
			"image differs", "pod-bad-image", pod, "app", "docker.io/library/other:1",
			[]string{"pod checkpoint " + pod, "dumped from image " + testImage, "docker.io/library/other:1"},
		},
		{
			"no writable layer", "pod-bad-layer", pod, "nolayer", testImage,
			[]string{"pod checkpoint " + pod, "no rootfs-diff.tar", "--rootfs"},
		},
		{
			"relative", "pod-bad-relative", "relative/pod", "app", testImage,
			[]string{"relative/pod", "relative path"},
		},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "bad.log")
			out, err := p.run(t, tt.id, tt.checkpoint, tt.container, tt.image, log, "sleep 1000")
			require.Error(t, err, "ctr run must fail: %s", out)
			t.Logf("ctr run: %s", out)
			for _, w := range tt.want {
				assert.Contains(t, out, w)
			}
			assert.Zero(t, p.c.taskPID("default", tt.id))
			requireNoRuncContainer(t, tt.id)
			assert.Empty(t, entries(p.scratch), "no fetched images are left")
		})
	}

	t.Run("without the annotation", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "plain.log")
		out, err := p.run(t, "pod-plain", "", "app", testImage, log, "echo plain-started; "+countScript)
		require.NoError(t, err, out)
		var pid int
		require.Eventually(t, func() bool {
			pid = p.c.taskPID("default", "pod-plain")
			return pid > 0 && readCounter(containerCounter(pid)) >= 2
		}, 10*time.Second, 20*time.Millisecond, "a plain container runs through the handler")
		require.Eventually(t, func() bool { data, _ := os.ReadFile(log); return bytes.Contains(data, []byte("plain-started")) },
			10*time.Second, 20*time.Millisecond)
		_, err = os.Stat(containerCounter(pid))
		require.NoError(t, err)
	})
}

// TestPodRestoreFromS3: the same, for a pod checkpoint in S3 (versitygw) whose entry is a zstd
// archive: the daemon downloads and unpacks it for the handler, which removes it after the
// restore.
func TestPodRestoreFromS3(t *testing.T) {
	srv := storagetest.Start(t)
	p := newPodHandler(t, srv.Env()...)
	prefix := "pods/p1"
	location := "s3://" + srv.Bucket + "/" + prefix
	before, path := p.dumpCounter(t, "pod-s3-app", location, "app", "--compression", "zstd")
	require.Equal(t, location+"/app.tar.zst", path)
	mc, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: srv.Region})
	require.NoError(t, err)
	manifest := podManifest(t, &daemonv1.PodContainer{Name: "app", Image: testImage, Id: "pod-s3-app", Entry: "app.tar.zst"})
	_, err = mc.PutObject(context.Background(), srv.Bucket, prefix+"/pod.json", bytes.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{})
	require.NoError(t, err)

	log := filepath.Join(t.TempDir(), "restored.log")
	out, err := p.run(t, "pod-s3-restored", location, "app", testImage, log, "exit 3")
	require.NoError(t, err, "ctr run through the handler: %s", out)
	requireRestored(t, p.c, "pod-s3-restored", before, log)
	assert.Empty(t, entries(p.scratch), "the handler removed the downloaded images")

	out, err = p.run(t, "pod-s3-missing", "s3://"+srv.Bucket+"/pods/none", "app", testImage, filepath.Join(t.TempDir(), "x.log"), "sleep 1000")
	require.Error(t, err, out)
	assert.Contains(t, out, "pod checkpoint s3://"+srv.Bucket+"/pods/none")
	assert.Contains(t, out, "no such checkpoint")
	requireNoRuncContainer(t, "pod-s3-missing")
}
