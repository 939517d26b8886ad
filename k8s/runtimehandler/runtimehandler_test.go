package runtimehandler

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseInvocation: the shim's command lines (go-runc's) split into global flags, command and
// arguments; what the handler does not understand passes through.
func TestParseInvocation(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		ok      bool
		want    invocation
		globals int
	}{
		{
			"shim create",
			[]string{"--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json", "--log-format", "json", "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "app"},
			true,
			invocation{root: "/run/containerd/runc/k8s.io", log: "/b/log.json", logFormat: "json", command: "create", args: []string{"--bundle", "/b", "--pid-file", "/b/init.pid", "app"}},
			7,
		},
		{
			"equals and single dash",
			[]string{"-root=/r", "--debug", "--criu=/usr/sbin/criu", "-log-format=text", "start", "app"},
			true,
			invocation{root: "/r", logFormat: "text", command: "start", args: []string{"app"}},
			4,
		},
		{"no command", []string{"--root", "/r"}, true, invocation{root: "/r"}, 2},
		{"help", []string{"--help"}, false, invocation{}, 0},
		{"version", []string{"-v"}, false, invocation{}, 0},
		{"unknown global", []string{"--new-flag", "create", "x"}, false, invocation{}, 0},
		{"value missing", []string{"--root"}, false, invocation{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseInvocation(tt.args)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, tt.args[:tt.globals], got.globals)
			got.globals = nil
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseCreate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
		want createFlags
	}{
		{"shim", []string{"--bundle", "/b", "--pid-file", "/b/init.pid", "app"}, true, createFlags{id: "app", bundle: "/b", pidFile: "/b/init.pid"}},
		{
			"console, no pivot",
			[]string{"-b=/b", "--console-socket", "/tmp/s.sock", "--no-pivot", "--no-new-keyring", "--pid-file=/p", "app"},
			true,
			createFlags{id: "app", bundle: "/b", pidFile: "/p", consoleSocket: "/tmp/s.sock", noPivot: true},
		},
		{"id first", []string{"app", "--bundle", "/b"}, true, createFlags{id: "app", bundle: "/b"}},
		{"no bundle", []string{"app"}, true, createFlags{id: "app"}},
		{"preserve-fds 0", []string{"--preserve-fds", "0", "app"}, true, createFlags{id: "app"}},
		{"preserve-fds", []string{"--preserve-fds", "2", "app"}, false, createFlags{}},
		{"no id", []string{"--bundle", "/b"}, false, createFlags{}},
		{"two ids", []string{"a", "b"}, false, createFlags{}},
		{"unknown", []string{"--keep", "app"}, false, createFlags{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseCreate(tt.args)
			require.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestRestoreTargetOf: an app container with the annotation is restored; the pod's sandbox, a
// container without it, and an unreadable bundle are runc's.
func TestRestoreTargetOf(t *testing.T) {
	write := func(spec string) string {
		b := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(b, "config.json"), []byte(spec), 0o600))
		return b
	}
	b := write(`{"root":{"path":"rootfs"},"annotations":{"cedana.io/restore":"s3://bkt/p1","io.kubernetes.cri.container-name":"app",
		"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.image-name":"docker.io/library/app:1"}}`)
	got, ok := restoreTargetOf(b)
	require.True(t, ok)
	assert.Equal(t, restoreTarget{checkpoint: "s3://bkt/p1", container: "app", image: "docker.io/library/app:1", rootfs: filepath.Join(b, "rootfs")}, got)

	got, ok = restoreTargetOf(write(`{"root":{"path":"/abs/rootfs"},"annotations":{"cedana.io/restore":"/ck"}}`))
	require.True(t, ok, "no CRI annotations: refused later, with a message")
	assert.Equal(t, restoreTarget{checkpoint: "/ck", rootfs: "/abs/rootfs"}, got)

	for name, spec := range map[string]string{
		"sandbox":       `{"annotations":{"cedana.io/restore":"/ck","io.kubernetes.cri.container-type":"sandbox"}}`,
		"no annotation": `{"annotations":{"io.kubernetes.cri.container-name":"app"}}`,
		"empty":         `{"annotations":{"cedana.io/restore":""}}`,
		"not json":      `{`,
	} {
		_, ok := restoreTargetOf(write(spec))
		assert.False(t, ok, name)
	}
	_, ok = restoreTargetOf(t.TempDir())
	assert.False(t, ok, "no config.json")
}

// TestReport: the message goes to stderr and, as runc's last error, to its log.
func TestReport(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log.json")
	require.NoError(t, os.WriteFile(log, []byte(`{"level":"info","msg":"x"}`+"\n"), 0o600))
	var stderr bytes.Buffer
	report(invocation{log: log, logFormat: "json"}, &stderr, `pod checkpoint /ck: no such "checkpoint"`)
	assert.Equal(t, "pod checkpoint /ck: no such \"checkpoint\"\n", stderr.String())
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Regexp(t, `^\{"level":"info","msg":"x"\}\n\{"level":"error","msg":"pod checkpoint /ck: no such \\"checkpoint\\"","time":"[^"]+"\}\n$`, string(data))

	stderr.Reset()
	report(invocation{}, &stderr, "no log")
	assert.Equal(t, "no log\n", stderr.String())
}
