package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/k8s"
	"github.com/cedana/cedana/storage/storagetest"
)

// podCounters are the app containers of the migrated pod: each counts into its own /tmp/count.
var podCounters = []string{"worker", "sidecar"}

// TestK8sPodMigration is the Kubernetes path end to end, at the node level, with what the kubelet
// uses (containerd's CRI, driven by crictl): a pod of two counting containers is checkpointed to
// S3 with `cedana dump pod`, stopped and removed; a new pod in the cedana runtime with the
// annotation naming the checkpoint runs both containers again, each counting on from its own
// value, and logs, exec, stop and remove work on it as on any pod. Annotations naming a checkpoint
// that does not exist, a container the checkpoint lacks, or another image fail the container's
// start with the checkpoint and the cause, and leave no runc container behind.
func TestK8sPodMigration(t *testing.T) {
	srv := storagetest.Start(t)
	d := startDaemon(t, cedanaBin, srv.Env()...)
	n := needCRI(t, d)

	// Node A: the pod, as the kubelet makes it.
	original := n.runPod(criPod{Name: "trainer", Namespace: "ml", UID: "uid-trainer-a"})
	ids := map[string]string{}
	for _, name := range podCounters {
		ids[name] = n.runContainer(original, criContainer{Name: name, Command: []string{"/bin/sh", "-c", countScript}})
	}
	// Each container logs "count N" at every tenth count: its log tells where it stopped, exactly
	// (the dump froze it less than ten counts after its last line), and where the restored one
	// goes on from (its first line is the next tenth), however long each step takes.
	for _, name := range podCounters {
		id := ids[name]
		require.Eventually(t, func() bool { return len(loggedCounts(n.logs(id))) > 0 }, 10*time.Second, 20*time.Millisecond, "%s does not count", name)
	}
	r := d.cli("dump", "pod", "trainer", "-n", "ml", "--containerd-address", n.address,
		"--dir", "s3://"+srv.Bucket+"/pods", "--compression", "zstd", "-o", "json")
	require.Equal(t, 0, r.code, "dump pod: %s", r)
	var dumped daemonv1.DumpPodResponse
	require.NoError(t, protojson.Unmarshal([]byte(r.stdout), &dumped), r.stdout)
	location := dumped.GetPath()
	require.True(t, strings.HasPrefix(location, "s3://"+srv.Bucket+"/pods/"), location)
	require.Len(t, dumped.GetManifest().GetContainers(), len(podCounters))
	last := map[string]int{}
	for _, name := range podCounters {
		// Without --leave-running the dump ended the workload, as a preemption would.
		n.waitState(ids[name], "CONTAINER_EXITED")
		counts := loggedCounts(n.logs(ids[name]))
		last[name] = counts[len(counts)-1]
	}
	n.stopPod(original.ID)
	n.removePod(original.ID)

	// Node B: the pod created again in the cedana runtime, with the annotation.
	restoredPod := criPod{
		Name: "trainer", Namespace: "ml", UID: "uid-trainer-b", RuntimeHandler: k8s.RuntimeHandler,
		Annotations: map[string]string{k8s.RestoreAnnotation: location},
	}
	s := n.runPod(restoredPod)
	started := time.Now()
	restored := map[string]string{}
	for _, name := range podCounters {
		restored[name] = n.runContainer(s, criContainer{Name: name, Command: []string{"/bin/sh", "-c", countScript}})
	}
	t.Logf("both containers Running %v after the pod was created", time.Since(started).Round(time.Millisecond))
	for _, name := range podCounters {
		id := restored[name]
		st := n.inspect(id)
		assert.Equal(t, "CONTAINER_RUNNING", st.Status.State)
		assert.Equal(t, location, st.Info.RuntimeSpec.Annotations[k8s.RestoreAnnotation])
		// It goes on from its own count, and what it writes after the restore reaches its log.
		var counts []int
		require.Eventually(t, func() bool { counts = loggedCounts(n.logs(id)); return len(counts) >= 2 }, 10*time.Second, 20*time.Millisecond,
			"crictl logs %s shows no counting after the restore: %s", name, n.logs(id))
		assert.Equal(t, last[name]+10, counts[0], "%s's first line after the restore follows its last before the dump (%d)", name, last[name])
		assert.Equal(t, counts[0]+10, counts[1], "%s counts on", name)
		out, err := n.exec(id, "cat", "/tmp/count")
		require.NoError(t, err, "crictl exec %s", name)
		v, err := strconv.Atoi(strings.TrimSpace(out))
		require.NoError(t, err, out)
		assert.GreaterOrEqual(t, v, counts[1], "crictl exec sees the restored counter of %s", name)
	}
	n.stopPod(s.ID)
	for _, name := range podCounters {
		n.waitState(restored[name], "CONTAINER_EXITED")
	}
	n.removePod(s.ID)
	assert.Empty(t, n.mustCrictl("pods", "-q", "--id", s.ID))

	// What fails, fails the container's start with the checkpoint and the cause, and leaves no
	// runc container behind.
	other := filepath.Join(n.dir, "other-image.tar")
	require.NoError(t, writeTestImage(other, "docker.io/library/cedana-e2e-other:latest", "/bin/sh"))
	out, err := n.ctr("image", "import", other)
	require.NoError(t, err, out)
	tests := []struct {
		name, location, container, image string
		want                             []string
	}{
		{"no such checkpoint", "s3://" + srv.Bucket + "/pods/nope", "worker", "", []string{"s3://" + srv.Bucket + "/pods/nope", "pod.json"}},
		{"no entry for the container", location, "trainer-3", "", []string{location, "no entry for container trainer-3", "worker", "sidecar"}},
		{"another image", location, "worker", "docker.io/library/cedana-e2e-other:latest", []string{location, "cedana-e2e-other"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := n.forTest(t)
			s := n.runPod(criPod{
				Name: "bad" + strconv.Itoa(i), Namespace: "ml", UID: "uid-bad-" + strconv.Itoa(i), RuntimeHandler: k8s.RuntimeHandler,
				Annotations: map[string]string{k8s.RestoreAnnotation: tt.location},
			})
			id := n.createContainer(s, criContainer{Name: tt.container, Image: tt.image, Command: []string{"/bin/sh", "-c", countScript}})
			_, err := n.crictl("start", id)
			require.Error(t, err, "the start of %s restores nothing", tt.container)
			t.Log(err)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.NotEqual(t, "CONTAINER_RUNNING", n.inspect(id).Status.State)
			_, statErr := os.Stat(filepath.Join("/run/containerd/runc", criNamespace, id))
			assert.ErrorIs(t, statErr, os.ErrNotExist, "runc keeps no state of the failed container")
			n.stopPod(s.ID)
			n.removePod(s.ID)
		})
	}
}

// loggedCounts are the N of the "count N" lines of a counting container's log, in order.
func loggedCounts(log string) []int {
	var counts []int
	for _, line := range strings.Split(log, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "count "); ok {
			if n, err := strconv.Atoi(v); err == nil {
				counts = append(counts, n)
			}
		}
	}
	return counts
}
