package k8s

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testPath   = "/etc/containerd/config.toml"
	testBinary = "/usr/local/bin/cedana-runc"
	v2Runtime  = `plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cedana`
	v3Runtime  = `plugins."io.containerd.cri.v1.runtime".containerd.runtimes.cedana`
)

// v2Config is what a containerd 1.7 node's configuration looks like: another runtime defined.
const v2Config = `version = 2
root = "/var/lib/containerd"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
`

const v3Config = `version = 3
[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
`

func TestAddRuntime(t *testing.T) {
	tests := []struct {
		name    string
		in      ConfigFile
		table   string // the runtime's table in the result
		version int64  // the result's version
		contain []string
		keep    []string // keys of in that the result still has
	}{
		{name: "missing file", in: ConfigFile{}, table: v2Runtime, version: 2, contain: []string{noteCreated, "version = 2\n", noteRunc}},
		{
			name: "version 2 with another runtime", in: ConfigFile{Data: []byte(v2Config), Exists: true}, table: v2Runtime, version: 2,
			keep: []string{`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup`, "root"},
		},
		{
			name: "version 3", in: ConfigFile{Data: []byte(v3Config), Exists: true}, table: v3Runtime, version: 3,
			keep: []string{`plugins."io.containerd.cri.v1.runtime".containerd.default_runtime_name`},
		},
		{
			name: "no newline at the end", in: ConfigFile{Data: []byte(strings.TrimSuffix(v3Config, "\n")), Exists: true}, table: v3Runtime, version: 3,
			contain: []string{noteNewline},
		},
		{name: "empty file", in: ConfigFile{Data: []byte{}, Exists: true}, table: v2Runtime, version: 2, contain: []string{"version = 2\n"}},
		{
			name: "version 3 without runtimes", in: ConfigFile{Data: []byte("version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"overlayfs\"\n"), Exists: true},
			table: v3Runtime, version: 3, contain: []string{noteRunc},
		},
		{
			name: "comments only", in: ConfigFile{Data: []byte("# containerd's settings\n# none yet"), Exists: true}, table: v2Runtime, version: 2,
			contain: []string{"version = 2\n", noteNewline, noteRunc},
		},
		{
			name: "dotted keys", in: ConfigFile{Data: []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nruntimes.runc.runtime_type = \"io.containerd.runc.v2\"\n"), Exists: true},
			table: v2Runtime, version: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := AddRuntime(testPath, tt.in, testBinary)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(string(out), string(tt.in.Data)), "setup changed the file's own bytes:\n%s", out)
			for _, want := range tt.contain {
				assert.Contains(t, string(out), want)
			}
			parsed := parse(t, out)
			assert.Equal(t, tt.version, parsed["version"])
			runtime := strings.ReplaceAll(tt.table, `"`, "")
			assert.Equal(t, "io.containerd.runc.v2", get(t, parsed, runtime+".runtime_type"))
			assert.Equal(t, []any{"cedana.io/*"}, get(t, parsed, runtime+".pod_annotations"))
			assert.Equal(t, testBinary, get(t, parsed, runtime+".options.BinaryName"))
			runc := strings.TrimSuffix(runtime, "cedana") + "runc"
			assert.Equal(t, "io.containerd.runc.v2", get(t, parsed, runc+".runtime_type"), "containerd's default runtime is still there")
			for _, key := range tt.keep {
				get(t, parsed, strings.ReplaceAll(key, `"`, ""))
			}

			// Twice: one runtime entry, the same file.
			again, err := AddRuntime(testPath, ConfigFile{Data: out, Exists: true}, testBinary)
			require.NoError(t, err)
			assert.Equal(t, string(out), string(again))
			assert.Equal(t, 1, strings.Count(string(again), "["+tt.table+"]"))

			// Another binary: the entry is replaced, not added.
			moved, err := AddRuntime(testPath, ConfigFile{Data: out, Exists: true}, "/opt/bin/cedana-runc")
			require.NoError(t, err)
			assert.Equal(t, 1, strings.Count(string(moved), "["+tt.table+"]"))
			assert.Equal(t, "/opt/bin/cedana-runc", get(t, parse(t, moved), runtime+".options.BinaryName"))

			// Destroy: byte for byte, the file removed again if setup created it.
			orig, err := RemoveRuntime(testPath, ConfigFile{Data: again, Exists: true})
			require.NoError(t, err)
			assert.Equal(t, tt.in.Exists, orig.Exists)
			assert.Equal(t, string(tt.in.Data), string(orig.Data))
			same, err := RemoveRuntime(testPath, orig)
			require.NoError(t, err)
			assert.Equal(t, orig, same, "destroy twice")
		})
	}
}

func TestAddRuntimeRefuses(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		errors []string
	}{
		{
			name:   "cedana runtime of its own",
			in:     v2Config + "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.cedana]\n  runtime_type = \"io.containerd.runc.v2\"\n",
			errors: []string{testPath, "already defines a runtime \"cedana\" that cedana k8s setup did not write", v2Runtime, "remove that runtime"},
		},
		{
			name: "CRI disabled", in: "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
			errors: []string{testPath, "disables the CRI plugin", "remove it from disabled_plugins"},
		},
		{
			name: "CRI disabled, version 3", in: "version = 3\ndisabled_plugins = [\"io.containerd.cri.v1.runtime\"]\n",
			errors: []string{testPath, `"io.containerd.cri.v1.runtime"`, "remove it from disabled_plugins"},
		},
		{name: "version 1", in: "version = 1\n[plugins.cri]\n", errors: []string{testPath, "version = 1", "migrate the file"}},
		{name: "unknown version", in: "version = 4\n", errors: []string{testPath, "version = 4", "versions 2 (containerd 1.7) and 3"}},
		{name: "no version", in: "root = \"/var/lib/containerd\"\n", errors: []string{testPath, "no version line", "migrate it"}},
		{name: "not TOML", in: "version = = 2\n", errors: []string{testPath, "not valid TOML", "fix it"}},
		{
			name:   "runtimes as an inline table",
			in:     "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nruntimes = { runc = { runtime_type = \"io.containerd.runc.v2\" } }\n",
			errors: []string{testPath, "would leave it invalid", "by hand"},
		},
		{name: "block without its end", in: v2Config + blockBegin + "\n", errors: []string{testPath, "without its \"" + blockEnd, "by hand"}},
		{name: "end without its block", in: v2Config + blockEnd + "\n", errors: []string{testPath, "without its \"" + blockBegin}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AddRuntime(testPath, ConfigFile{Data: []byte(tt.in), Exists: true}, testBinary)
			require.Error(t, err)
			for _, want := range tt.errors {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestRemoveRuntime(t *testing.T) {
	added, err := AddRuntime(testPath, ConfigFile{Data: []byte(v2Config), Exists: true}, testBinary)
	require.NoError(t, err)
	created, err := AddRuntime(testPath, ConfigFile{}, testBinary)
	require.NoError(t, err)
	tests := []struct {
		name string
		in   ConfigFile
		want ConfigFile
		err  string
	}{
		{name: "missing file", in: ConfigFile{}, want: ConfigFile{}},
		{name: "never set up", in: ConfigFile{Data: []byte(v2Config), Exists: true}, want: ConfigFile{Data: []byte(v2Config), Exists: true}},
		{name: "set up", in: ConfigFile{Data: added, Exists: true}, want: ConfigFile{Data: []byte(v2Config), Exists: true}},
		{
			name: "edited after the block", in: ConfigFile{Data: append(append([]byte{}, added...), "[debug]\n  level = \"info\"\n"...), Exists: true},
			want: ConfigFile{Data: []byte(v2Config + "[debug]\n  level = \"info\"\n"), Exists: true},
		},
		{name: "created by setup", in: ConfigFile{Data: created, Exists: true}, want: ConfigFile{}},
		{
			name: "created by setup, then edited", in: ConfigFile{Data: append(append([]byte{}, created...), "[debug]\n"...), Exists: true},
			want: ConfigFile{Data: []byte("[debug]\n"), Exists: true},
		},
		{name: "two blocks", in: ConfigFile{Data: append(append([]byte{}, added...), created...), Exists: true}, err: "more than one cedana k8s setup block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RemoveRuntime(testPath, tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want.Exists, got.Exists)
			assert.Equal(t, string(tt.want.Data), string(got.Data))
		})
	}
}

func parse(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var parsed map[string]any
	require.NoError(t, toml.Unmarshal(data, &parsed), "%s", data)
	return parsed
}

// get returns the value at a dotted key whose parts hold no dots but the CRI plugin's name.
func get(t *testing.T, parsed map[string]any, key string) any {
	t.Helper()
	for _, plugin := range []string{"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"} {
		key = strings.ReplaceAll(key, plugin, strings.ReplaceAll(plugin, ".", "\x00"))
	}
	parts := strings.Split(key, ".")
	for i := range parts {
		parts[i] = strings.ReplaceAll(parts[i], "\x00", ".")
	}
	v, ok := lookup(parsed, parts)
	require.True(t, ok, "no %s in the configuration", key)
	return v
}
