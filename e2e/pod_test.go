package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/storage/storagetest"
)

// TestDumpPodLocal: a pod of a sandbox and two counting app containers, one labelled by the
// kubelet and one known by the CRI's annotations only, is dumped with --leave-running into one
// pod checkpoint: both keep counting, the sandbox and another pod's container are not dumped,
// the entries, the manifest and the catalog are right, and the two containers were frozen at one
// instant. One entry then restores as a new container that counts on.
func TestDumpPodLocal(t *testing.T) {
	c := needContainerd(t, "k8s.io")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	web := kubePod{c: c, name: "web", ns: "prod", uid: "uid-web", kubeletLabels: true}
	web.sandbox(t, "web-sandbox")
	appPID := web.app(t, "web-app", "app", "", true)
	crictl := web
	crictl.kubeletLabels = false
	sidePID := crictl.app(t, "web-side", "side", "", false)
	otherPID := kubePod{c: c, name: "other", ns: "prod", uid: "uid-other", kubeletLabels: true}.app(t, "other-app", "app", "", false)

	dir := t.TempDir()
	r := d.cli("dump", "pod", "web", "-n", "prod", at, "--dir", dir, "--name", "ck", "--leave-running", "-o", "json")
	resp := podResult(t, r)
	ck := filepath.Join(dir, "ck")
	assert.Equal(t, ck, resp.Path)
	for _, pid := range []int{appPID, sidePID, otherPID} {
		requireCounting(t, containerCounter(pid), readCounter(containerCounter(pid)))
	}
	assert.Equal(t, appPID, c.taskPID("k8s.io", "web-app"), "RUNNING again, not PAUSED")
	assert.Equal(t, sidePID, c.taskPID("k8s.io", "web-side"))

	m := readManifest(t, ck)
	assert.Equal(t, "web", m.Name)
	assert.Equal(t, "prod", m.Namespace)
	assert.Equal(t, "uid-web", m.Uid)
	assert.NotEmpty(t, m.CedanaVersion)
	assert.WithinDuration(t, time.Now(), m.CreatedAt.AsTime(), time.Minute)
	require.Len(t, m.Containers, 2, "the app containers, not the sandbox nor the other pod's")
	for i, want := range []struct{ name, id string }{{"app", "web-app"}, {"side", "web-side"}} {
		got := m.Containers[i]
		assert.Equal(t, want.name, got.Name)
		assert.Equal(t, want.id, got.Id)
		assert.Equal(t, want.name, got.Entry)
		assert.Equal(t, testImage, got.Image)
		for _, f := range []string{"checkpoint.json", "rootfs-diff.tar", "containerd-spec.json"} {
			assert.FileExists(t, filepath.Join(ck, got.Entry, f))
		}
	}
	assert.ElementsMatch(t, []string{"app", "side", "pod.json"}, entries(ck), "nothing else at the location")
	require.Len(t, resp.Containers, 2)
	catalog := d.cli("checkpoint", "list", "-o", "json").stdout
	for _, e := range resp.Containers {
		assert.NotEmpty(t, e.CheckpointId)
		assert.Contains(t, catalog, e.Path, "each entry is in the catalog")
	}

	// Frozen together: the two uptimes the containers last wrote are one instant apart, though
	// the second was dumped after the first's whole dump.
	upApp, upSide := frozenUptime(t, filepath.Join(ck, "app")), frozenUptime(t, filepath.Join(ck, "side"))
	firstDump := resp.Containers[0].Stats.Total.AsDuration()
	t.Logf("frozen %v; app's dump took %v; last uptimes app %d side %d (1/100 s)", resp.Stats.Frozen.AsDuration(), firstDump, upApp, upSide)
	require.Greater(t, firstDump, 100*time.Millisecond, "the first dump is long enough for the check to tell")
	// Frozen one after the other, the second would have run on for the whole first dump; frozen
	// together, they are a few loop turns apart (more on a loaded machine, where a 10 ms loop
	// turn can take far longer): well under a quarter of that dump, and at most 50 ms when idle.
	apart := time.Duration(abs(upApp-upSide)) * 10 * time.Millisecond
	assert.Less(t, apart, max(50*time.Millisecond, firstDump/4), "the containers were frozen at one instant")
	assert.GreaterOrEqual(t, resp.Stats.Frozen.AsDuration(), firstDump)

	// An entry restores with the existing single-container restore, and counts on.
	r = d.cli("restore", "containerd", "--path", filepath.Join(ck, "app"), "--id", "web-app-2", at)
	require.Equal(t, 0, r.code, r.String())
	t.Cleanup(func() { removeContainer(c, "k8s.io", "web-app-2") })
	restored := restoredPID(t, r)
	requireCounting(t, containerCounter(restored), readCounter(containerCounter(restored)))

	r = d.cli("dump", "pod", "web", "-n", "prod", at, "--dir", dir, "--name", "ck")
	requireOneLineError(t, r, "pod checkpoint "+ck+" already exists")
}

func abs(n int) int { return max(n, -n) }

// TestDumpPodS3: a pod dumped to S3 with zstd, without --leave-running: its entries and
// manifest are in the bucket, its tasks are gone, and an entry restores from S3.
func TestDumpPodS3(t *testing.T) {
	c := needContainerd(t, "k8s.io")
	srv := storagetest.Start(t)
	d := startDaemon(t, cedanaBin, append(srv.Env(), "CEDANA_CHECKPOINT_TEMP_DIR="+t.TempDir())...)
	at := "--containerd-address=" + c.address
	pod := kubePod{c: c, name: "cloud", ns: "default", uid: "uid-cloud", kubeletLabels: true}
	pod.sandbox(t, "cloud-sandbox")
	one := pod.app(t, "cloud-one", "one", "", false)
	two := pod.app(t, "cloud-two", "two", "", false)

	dest := "s3://" + srv.Bucket + "/pods"
	r := d.cli("dump", "pod", "cloud", at, "--dir", dest, "--compression", "rar")
	requireOneLineError(t, r, `unknown compression "rar"`)
	require.Equal(t, one, c.taskPID("k8s.io", "cloud-one"), "a refused dump touches nothing")

	r = d.cli("dump", "pod", "cloud", at, "--dir", dest, "--compression", "zstd", "-o", "json")
	resp := podResult(t, r)
	name := strings.TrimPrefix(resp.Path, dest+"/")
	assert.Regexp(t, `^pod-default-cloud-\d+$`, name)
	assert.ElementsMatch(t, []string{"pods/" + name + "/one.tar.zst", "pods/" + name + "/two.tar.zst", "pods/" + name + "/pod.json"}, bucketContents(t, srv))
	assert.Equal(t, "one.tar.zst", resp.Manifest.Containers[0].Entry)
	for _, pid := range []int{one, two} {
		require.Eventually(t, func() bool { reapAll(pid); return pidGone(pid) }, 10*time.Second, 20*time.Millisecond)
	}
	assert.Zero(t, c.taskPID("k8s.io", "cloud-one"), "the dumped tasks are gone")
	assert.NotZero(t, c.taskPID("k8s.io", "cloud-sandbox"), "the sandbox runs on")

	r = d.cli("restore", "containerd", "--path", resp.Path+"/two.tar.zst", "--id", "cloud-two-2", at)
	require.Equal(t, 0, r.code, r.String())
	t.Cleanup(func() { removeContainer(c, "k8s.io", "cloud-two-2") })
	restored := restoredPID(t, r)
	requireCounting(t, containerCounter(restored), readCounter(containerCounter(restored)))
}

// TestDumpPodErrors: an unknown pod, a pod without running containers and an unknown
// --container are refused with one clear line; a pod one of whose containers CRIU cannot dump
// fails, leaves every container running (also without --leave-running) and writes nothing; a
// binary without a runtime that runs pods says so.
func TestDumpPodErrors(t *testing.T) {
	c := needContainerd(t, "k8s.io")
	d := startDaemon(t, cedanaBin)
	at := "--containerd-address=" + c.address
	dir := t.TempDir()

	r := d.cli("dump", "pod", "ghost", "-n", "prod", at, "--dir", dir)
	requireOneLineError(t, r, "no pod prod/ghost", c.address, `namespace "k8s.io"`, "crictl pods", "kubectl get pods -n prod")

	idle := kubePod{c: c, name: "idle", ns: "default", uid: "uid-idle", kubeletLabels: true}
	idle.sandbox(t, "idle-sandbox")
	out, err := c.ctr("k8s.io", append(append([]string{"container", "create"}, idle.meta("app", "container")...), testImage, "idle-app", "/bin/sh")...)
	require.NoError(t, err, out)
	t.Cleanup(func() { removeContainer(c, "k8s.io", "idle-app") })
	r = d.cli("dump", "pod", "idle", at, "--dir", dir)
	requireOneLineError(t, r, "pod default/idle has no running container", "app")

	fail := kubePod{c: c, name: "fail", ns: "default", uid: "uid-fail", kubeletLabels: true}
	first := fail.app(t, "fail-first", "first", "", false)
	// An open file of 2 MiB that was deleted: CRIU refuses it (ghost file limit 1 MiB).
	second := fail.app(t, "fail-second", "second", "/bin/busybox dd if=/dev/zero of=/tmp/big bs=1024 count=2048; exec 3</tmp/big; rm /tmp/big; "+podCountScript, false)
	r = d.cli("dump", "pod", "fail", at, "--dir", dir, "--container", "first", "--container", "nope")
	requireOneLineError(t, r, `pod default/fail has no container "nope": its containers are first, second`)

	for _, extra := range [][]string{{"--leave-running"}, nil} {
		args := append([]string{"dump", "pod", "fail", at, "--dir", dir, "--name", "failed"}, extra...)
		r = d.cli(args...)
		requireOneLineError(t, r, `dump container "second" (fail-second) of pod default/fail`, "every container of the pod runs on")
		assert.Equal(t, first, c.taskPID("k8s.io", "fail-first"), "RUNNING, not paused nor gone (%v)", extra)
		assert.Equal(t, second, c.taskPID("k8s.io", "fail-second"), "RUNNING, not paused nor gone (%v)", extra)
		for _, pid := range []int{first, second} {
			requireCounting(t, containerCounter(pid), readCounter(containerCounter(pid)))
		}
		assert.NoDirExists(t, filepath.Join(dir, "failed"), "no pod checkpoint, no entry")
		assert.NotContains(t, d.cli("checkpoint", "list", "-o", "json").stdout, filepath.Join(dir, "failed"), "nothing in the catalog")
	}

	custom := startDaemon(t, cedanaCustomBin)
	r = custom.cli("dump", "pod", "fail", "--dir", dir)
	requireOneLineError(t, r, "no runtime that checkpoints pods", "rebuild without -tags custom")
	assert.Empty(t, entries(dir), "nothing written by any failure")
}
