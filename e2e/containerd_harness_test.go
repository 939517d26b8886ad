package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cedana/cedana/internal/testutil"
)

// containerdBin is where hack/install-containerd.sh (just deps) puts containerd, its runc shim and ctr.
const containerdBin = "/opt/cedana/containerd/bin"

// testImage is the busybox image the tests import into containerd (no registry is reachable).
const testImage = "docker.io/library/cedana-e2e:latest"

// containerdDaemon is the containerd the tests share: started on first use with its root, state
// and socket in a temporary directory, stopped when the tests end.
type containerdDaemon struct {
	dir     string
	address string
	// cedanaSocket is where the runtime handler (the shim's runc) looks for the cedana daemon: a
	// test that restores through the handler starts its daemon there (CEDANA_ADDRESS).
	cedanaSocket string
	cmd          *exec.Cmd
	image        string // OCI layout tarball of testImage
	log          *testutil.Buffer
	err          error

	mu       sync.Mutex
	imported map[string]bool // namespaces testImage is in
}

var (
	sharedContainerd     *containerdDaemon
	sharedContainerdOnce sync.Once
)

// needContainerd returns the shared containerd with testImage imported into namespace ns,
// starting it on first use. Without containerd the test skips, or fails under CI=true.
func needContainerd(t *testing.T, ns string) *containerdDaemon {
	t.Helper()
	requireE2E(t)
	if _, err := os.Stat(filepath.Join(containerdBin, "containerd")); err != nil {
		testutil.SkipUnlessCI(t, fmt.Sprintf("containerd is not installed (`just deps` installs it): %v", err))
	}
	sharedContainerdOnce.Do(func() { sharedContainerd = startContainerd() })
	c := sharedContainerd
	if c.err != nil {
		t.Fatalf("start containerd: %v\n%s", c.err, c.log.String())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.imported[ns] {
		out, err := c.ctr(ns, "image", "import", c.image)
		if err != nil {
			t.Fatalf("ctr image import: %v\n%s", err, out)
		}
		c.imported[ns] = true
	}
	return c
}

// startContainerd starts containerd with a configuration of its own. Its environment carries
// CRIU_FAULT=130, as cedana's own CRIU has it: the shim's runc restores with criu, which waits
// forever for hardware breakpoints on VMs that do not virtualize them.
func startContainerd() *containerdDaemon {
	c := &containerdDaemon{log: &testutil.Buffer{}, imported: map[string]bool{}}
	c.dir, c.err = os.MkdirTemp("", "cedana-e2e-containerd-")
	if c.err != nil {
		return c
	}
	c.address = filepath.Join(c.dir, "containerd.sock")
	c.cedanaSocket = filepath.Join(c.dir, "cedana.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), c.address, c.address+".ttrpc")
	configPath := filepath.Join(c.dir, "config.toml")
	if c.err = os.WriteFile(configPath, []byte(config), 0o600); c.err != nil {
		return c
	}
	c.image = filepath.Join(c.dir, "image.tar")
	if c.err = writeTestImage(c.image, testImage, "/bin/sh"); c.err != nil {
		return c
	}
	c.cmd = exec.Command(filepath.Join(containerdBin, "containerd"), "--config", configPath)
	c.cmd.Env = append(os.Environ(), "PATH="+containerdBin+":"+os.Getenv("PATH"), "CRIU_FAULT=130",
		"CEDANA_ADDRESS="+c.cedanaSocket)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if c.err = c.cmd.Start(); c.err != nil {
		return c
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.ctr("default", "version"); err == nil {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.err = fmt.Errorf("containerd did not answer on %s within 20s", c.address)
	return c
}

// stopContainerd stops the shared containerd, if it was started, with every task it runs.
func stopContainerd() {
	c := sharedContainerd
	if c == nil || c.cmd == nil || c.cmd.Process == nil {
		return
	}
	for ns := range c.imported {
		out, _ := c.ctr(ns, "task", "ls", "-q")
		for _, id := range strings.Fields(out) {
			_, _ = c.ctr(ns, "task", "kill", "-s", "KILL", id)
			_, _ = c.ctr(ns, "task", "rm", "-f", id)
		}
	}
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	testutil.Stop(c.cmd.Process, done, 15*time.Second)
	_ = exec.Command("umount", "-R", filepath.Join(c.dir, "root")).Run()
	_ = os.RemoveAll(c.dir)
}

// ctr runs ctr against the shared containerd in namespace ns.
func (c *containerdDaemon) ctr(ns string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(containerdBin, "ctr"), append([]string{"--address", c.address, "-n", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// taskPID is the PID of container id's task in namespace ns, 0 when it has none.
func (c *containerdDaemon) taskPID(ns, id string) int {
	out, err := c.ctr(ns, "task", "ls")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == id && f[2] == "RUNNING" {
			pid, _ := strconv.Atoi(f[1])
			return pid
		}
	}
	return 0
}

// writeTestImage writes an OCI image layout tarball of a one-layer busybox-static image named ref,
// whose command is cmd.
func writeTestImage(path, ref string, cmd ...string) error {
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("busybox-static (just deps) is needed for the test image: %w", err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, dir := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}); err != nil {
			return err
		}
	}
	files := map[string][]byte{"bin/busybox": busybox, "etc/passwd": []byte("root:x:0:0:root:/:/bin/sh\n"), "etc/group": []byte("root:x:0:\n")}
	for _, name := range []string{"bin/busybox", "etc/group", "etc/passwd"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(files[name]))}); err != nil {
			return err
		}
		if _, err := tw.Write(files[name]); err != nil {
			return err
		}
	}
	for _, applet := range []string{"sh", "sleep", "echo", "cat", "ls"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	blobs := map[string][]byte{}
	add := func(data []byte) (string, int) {
		sum := sha256.Sum256(data)
		digest := hex.EncodeToString(sum[:])
		blobs[digest] = data
		return "sha256:" + digest, len(data)
	}
	layerDigest, layerSize := add(layer.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": cmd, "WorkingDir": "/"},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	configDigest, configSize := add(config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configSize},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layerSize}},
	})
	manifestDigest, manifestSize := add(manifest)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest, "size": manifestSize,
			"platform":    map[string]any{"architecture": "amd64", "os": "linux"},
			"annotations": map[string]any{"io.containerd.image.name": ref},
		}},
	})
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	out := tar.NewWriter(f)
	entries := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": index}
	for digest, data := range blobs {
		entries["blobs/sha256/"+digest] = data
	}
	if err := out.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "blobs/sha256/", Mode: 0o755}); err != nil {
		f.Close()
		return err
	}
	for name, data := range entries {
		if err := out.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			f.Close()
			return err
		}
		if _, err := out.Write(data); err != nil {
			f.Close()
			return err
		}
	}
	if err := out.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
