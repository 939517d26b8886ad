// Package deploy_test checks cedana's Kubernetes deployment: the Helm chart in charts/cedana,
// rendered with Helm's own engine, and the plain manifests in deploy/kubernetes, which are that
// chart rendered with its default values and namespace.create=true (go test ./deploy -update
// rewrites them). Every object is decoded strictly into its k8s.io/api type, so a misspelt or
// misplaced field fails, and the essentials of the node agent are checked.
package deploy_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/k8s"
)

var update = flag.Bool("update", false, "rewrite deploy/kubernetes from the chart")

const (
	chartDir     = "../charts/cedana"
	manifestsDir = "kubernetes"
	release      = "cedana"
	namespace    = "cedana"
	// header starts every file in deploy/kubernetes.
	header = "# Generated from charts/cedana by `go test ./deploy -update` (just chart): edit the chart, not this file.\n"
)

// objects are the decoded objects of one rendering.
type objects struct {
	daemonSet      *appsv1.DaemonSet
	configMap      *corev1.ConfigMap
	secret         *corev1.Secret
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	namespace      *corev1.Namespace
	runtimeClass   *nodev1.RuntimeClass
}

// render renders the chart as `helm template cedana charts/cedana --namespace cedana` does, with
// values over the chart's defaults, and returns the non-empty templates by file name.
func render(t *testing.T, values map[string]any) map[string]string {
	t.Helper()
	chart, err := loader.Load(chartDir)
	require.NoError(t, err)
	vals, err := chartutil.ToRenderValues(chart, values, chartutil.ReleaseOptions{
		Name: release, Namespace: namespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	require.NoError(t, err)
	out, err := engine.Render(chart, vals)
	require.NoError(t, err)
	files := map[string]string{}
	for name, text := range out {
		if strings.HasPrefix(filepath.Base(name), "_") || strings.TrimSpace(text) == "" {
			continue
		}
		files[filepath.Base(name)] = strings.TrimLeft(text, "\n")
	}
	return files
}

// decode decodes every document of files strictly into its k8s.io/api type: an unknown kind or
// field fails.
func decode(t *testing.T, files map[string]string) objects {
	t.Helper()
	var o objects
	targets := map[string]any{
		"apps/v1 DaemonSet": &o.daemonSet, "v1 ConfigMap": &o.configMap, "v1 Secret": &o.secret,
		"v1 Service": &o.service, "v1 ServiceAccount": &o.serviceAccount, "v1 Namespace": &o.namespace,
		"node.k8s.io/v1 RuntimeClass": &o.runtimeClass,
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(files[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			require.NoError(t, yaml.Unmarshal([]byte(doc), &tm), name)
			target, ok := targets[tm.APIVersion+" "+tm.Kind]
			require.True(t, ok, "%s: unexpected object %s %s", name, tm.APIVersion, tm.Kind)
			field := reflect.ValueOf(target).Elem() // a *T field of o, set to a new T
			field.Set(reflect.New(field.Type().Elem()))
			obj := field.Interface()
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "%s is not a valid %s", name, tm.Kind)
		}
	}
	return o
}

// stripComments drops YAML comment lines.
func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// TestManifestsAreTheRenderedChart checks that deploy/kubernetes is the chart rendered with its
// defaults and namespace.create=true, file for file; -update rewrites it.
func TestManifestsAreTheRenderedChart(t *testing.T) {
	files := render(t, map[string]any{"namespace": map[string]any{"create": true}})
	if *update {
		old, err := filepath.Glob(filepath.Join(manifestsDir, "*.yaml"))
		require.NoError(t, err)
		for _, f := range old {
			require.NoError(t, os.Remove(f))
		}
		for name, text := range files {
			require.NoError(t, os.WriteFile(filepath.Join(manifestsDir, name), []byte(header+text), 0o644))
		}
	}
	have, err := filepath.Glob(filepath.Join(manifestsDir, "*.yaml"))
	require.NoError(t, err)
	got := map[string]string{}
	for _, f := range have {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		got[filepath.Base(f)] = string(data)
	}
	want := map[string]string{}
	for name, text := range files {
		want[name] = header + text
	}
	require.Equal(t, want, got, "deploy/kubernetes is stale: run go test ./deploy -update (or just chart)")
}

// TestManifests decodes deploy/kubernetes strictly and checks the node agent's essentials.
func TestManifests(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(manifestsDir, "*.yaml"))
	require.NoError(t, err)
	files := map[string]string{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		files[filepath.Base(p)] = string(data)
	}
	o := decode(t, files)
	require.NotNil(t, o.namespace, "the Namespace")
	assert.Equal(t, namespace, o.namespace.Name)
	checkEssentials(t, o, true)
}

// TestChart renders the chart with a range of values, decodes every rendering strictly and checks
// what each value changes.
func TestChart(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		check  func(*testing.T, objects)
	}{
		{name: "defaults", check: func(t *testing.T, o objects) {
			assert.Nil(t, o.namespace, "helm install --create-namespace makes the namespace")
			require.NotNil(t, o.secret)
			assert.Empty(t, o.secret.StringData)
			assert.Nil(t, o.runtimeClass.Scheduling)
		}},
		{name: "inline S3 credentials", values: map[string]any{"s3": map[string]any{
			"accessKeyId": "AK", "secretAccessKey": "SK", "region": "eu-west-1", "endpoint": "http://minio:9000",
		}}, check: func(t *testing.T, o objects) {
			require.NotNil(t, o.secret)
			assert.Equal(t, map[string]string{
				"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK",
				"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://minio:9000",
			}, o.secret.StringData)
		}},
		{
			name: "existing S3 secret", values: map[string]any{"s3": map[string]any{"existingSecret": "my-s3"}},
			check: func(t *testing.T, o objects) {
				assert.Nil(t, o.secret)
				assert.Equal(t, "my-s3", daemon(t, o).EnvFrom[0].SecretRef.Name)
			},
		},
		{name: "image, node selector and tolerations", values: map[string]any{
			"image":        map[string]any{"repository": "registry.example/cedana", "tag": "v1.2.3", "pullPolicy": "Always"},
			"nodeSelector": map[string]any{"cedana.io/node": "true"},
			"tolerations":  []any{map[string]any{"operator": "Exists"}},
		}, check: func(t *testing.T, o objects) {
			spec := o.daemonSet.Spec.Template.Spec
			assert.Equal(t, "registry.example/cedana:v1.2.3", daemon(t, o).Image)
			assert.Equal(t, corev1.PullAlways, daemon(t, o).ImagePullPolicy)
			assert.Equal(t, "registry.example/cedana:v1.2.3", spec.InitContainers[0].Image)
			assert.Equal(t, corev1.PullAlways, spec.InitContainers[0].ImagePullPolicy)
			assert.Equal(t, map[string]string{"cedana.io/node": "true"}, spec.NodeSelector)
			assert.Equal(t, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, spec.Tolerations)
			require.NotNil(t, o.runtimeClass.Scheduling, "pods of the RuntimeClass go where cedana runs")
			assert.Equal(t, spec.NodeSelector, o.runtimeClass.Scheduling.NodeSelector)
			assert.Equal(t, spec.Tolerations, o.runtimeClass.Scheduling.Tolerations)
		}},
		{
			name: "metrics off", values: map[string]any{"metrics": map[string]any{"enabled": false}},
			check: func(t *testing.T, o objects) {
				assert.Nil(t, o.service)
				assert.Empty(t, daemon(t, o).Ports)
				assert.NotContains(t, o.daemonSet.Spec.Template.Annotations, "prometheus.io/scrape")
				assert.NotContains(t, o.configMap.Data[config.FileName], `"metrics"`)
			},
		},
		{
			name: "metrics on another port", values: map[string]any{"metrics": map[string]any{"port": 9100}},
			check: func(t *testing.T, o objects) {
				assert.Equal(t, "9100", o.service.Annotations["prometheus.io/port"])
				assert.Equal(t, int32(9100), daemon(t, o).Ports[0].ContainerPort)
				assert.Equal(t, ":9100", parseConfig(t, o.configMap.Data[config.FileName]).Metrics.Address)
			},
		},
		{
			name: "setup without restart", values: map[string]any{"setup": map[string]any{"restartContainerd": false}},
			check: func(t *testing.T, o objects) {
				cmd := o.daemonSet.Spec.Template.Spec.InitContainers[0].Command
				assert.NotContains(t, cmd, "--host-mount-ns")
				assert.NotContains(t, cmd, "--restart")
			},
		},
		{
			name: "setup off", values: map[string]any{"setup": map[string]any{"enabled": false}},
			check: func(t *testing.T, o objects) {
				assert.Empty(t, o.daemonSet.Spec.Template.Spec.InitContainers)
			},
		},
		{
			name: "config", values: map[string]any{"config": map[string]any{"log": map[string]any{"level": "debug"}}},
			check: func(t *testing.T, o objects) {
				cfg := parseConfig(t, o.configMap.Data[config.FileName])
				assert.Equal(t, "debug", cfg.Log.Level)
				assert.Equal(t, "json", cfg.Log.Format, "the other defaults stay")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := decode(t, render(t, tt.values))
			checkEssentials(t, o, false)
			tt.check(t, o)
		})
	}
}

// daemon returns the DaemonSet's daemon container.
func daemon(t *testing.T, o objects) corev1.Container {
	t.Helper()
	require.NotNil(t, o.daemonSet, "the DaemonSet")
	containers := o.daemonSet.Spec.Template.Spec.Containers
	require.Len(t, containers, 1)
	return containers[0]
}

// checkEssentials checks what every rendering must have: a privileged host-PID daemon with the
// host's directories, a readiness probe, the RuntimeClass of the handler k8s setup installs, and a
// config.json cedana reads without an unknown key.
func checkEssentials(t *testing.T, o objects, defaults bool) {
	t.Helper()
	require.NotNil(t, o.serviceAccount, "the ServiceAccount")
	require.NotNil(t, o.configMap, "the ConfigMap")
	require.NotNil(t, o.runtimeClass, "the RuntimeClass")
	for _, obj := range []metav1.Object{o.daemonSet, o.configMap, o.serviceAccount} {
		assert.Equal(t, namespace, obj.GetNamespace(), obj.GetName())
	}

	assert.Equal(t, k8s.RuntimeHandler, o.runtimeClass.Handler, "the handler k8s setup installs")
	assert.Equal(t, k8s.RuntimeHandler, o.runtimeClass.Name)

	spec := o.daemonSet.Spec.Template.Spec
	assert.True(t, spec.HostPID, "hostPID")
	assert.True(t, spec.HostNetwork, "hostNetwork")
	assert.Equal(t, o.serviceAccount.Name, spec.ServiceAccountName)
	c := daemon(t, o)
	assert.Equal(t, []string{"/usr/bin/cedana", "daemon", "start", "--host-mount-ns", "/proc/1/ns/mnt"}, c.Command)
	require.NotNil(t, c.SecurityContext)
	require.NotNil(t, c.SecurityContext.Privileged)
	assert.True(t, *c.SecurityContext.Privileged, "privileged")
	assert.False(t, c.Resources.Requests.Cpu().IsZero(), "a CPU request")
	assert.False(t, c.Resources.Requests.Memory().IsZero(), "a memory request")
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.Exec)
	assert.Equal(t, []string{"/usr/bin/cedana", "daemon", "check"}, c.ReadinessProbe.Exec.Command)

	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounts := map[string]string{} // mount path -> host path
	for _, m := range c.VolumeMounts {
		if hp, ok := hostPaths[m.Name]; ok {
			mounts[m.MountPath] = hp
		}
	}
	for _, dir := range []string{"/run/containerd", "/var/lib/cedana", "/run/cedana"} {
		assert.Equal(t, dir, mounts[dir], "the host's %s at the same path", dir)
	}
	assert.Contains(t, c.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: secretName(o)}, Optional: new(true),
	}}, "the S3 credentials")

	cfg := parseConfig(t, o.configMap.Data[config.FileName])
	assert.Equal(t, "/run/cedana", filepath.Dir(cfg.Address), "the socket is in the host's /run/cedana")
	if o.service != nil {
		assert.Equal(t, ":"+o.service.Annotations["prometheus.io/port"], cfg.Metrics.Address, "the daemon serves metrics where the Service says")
	}
	cmName := ""
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	assert.Equal(t, o.configMap.Name, cmName)
	assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "config", MountPath: config.DefaultDir, ReadOnly: true})

	if o.service != nil {
		assert.Equal(t, "true", o.service.Annotations["prometheus.io/scrape"])
		assert.Equal(t, "/metrics", o.service.Annotations["prometheus.io/path"])
		require.Len(t, o.service.Spec.Ports, 1)
		port := o.service.Spec.Ports[0].Port
		assert.Equal(t, fmt.Sprint(port), o.service.Annotations["prometheus.io/port"])
		require.Len(t, c.Ports, 1)
		assert.Equal(t, port, c.Ports[0].ContainerPort)
		assert.Equal(t, o.daemonSet.Spec.Selector.MatchLabels, o.service.Spec.Selector)
		assert.Contains(t, o.configMap.Data[config.FileName], fmt.Sprintf(`"address": ":%d"`, port))
	}
	if defaults {
		checkSetup(t, o)
	}
}

// checkSetup checks the default init container: `cedana k8s setup` copies the binary to the
// host and restarts containerd, in the host's mount namespace.
func checkSetup(t *testing.T, o objects) {
	t.Helper()
	spec := o.daemonSet.Spec.Template.Spec
	require.Len(t, spec.InitContainers, 1)
	ic := spec.InitContainers[0]
	require.NotNil(t, ic.SecurityContext)
	assert.True(t, *ic.SecurityContext.Privileged)
	assert.Equal(t, []string{
		"/usr/bin/cedana", "k8s", "setup", "--copy-binary",
		"--containerd-config", k8s.DefaultContainerdConfig, "--bin-dir", "/var/lib/cedana/bin",
		"--host-mount-ns", "/proc/1/ns/mnt", "--restart",
	}, ic.Command)
	var mountPaths []string
	for _, m := range ic.VolumeMounts {
		mountPaths = append(mountPaths, m.MountPath)
	}
	assert.True(t, slices.Contains(mountPaths, "/etc/containerd"), "containerd's configuration directory")
	assert.True(t, slices.Contains(mountPaths, "/var/lib/cedana/bin"))
}

// secretName is the name of the Secret the daemon takes its S3 credentials from.
func secretName(o objects) string {
	if o.secret != nil {
		return o.secret.Name
	}
	return o.daemonSet.Spec.Template.Spec.Containers[0].EnvFrom[0].SecretRef.Name
}

// parseConfig loads data as cedana loads its config.json and fails on an unknown key.
func parseConfig(t *testing.T, data string) config.Config {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, config.FileName), []byte(data), 0o600))
	loaded, err := config.LoadWith(config.Options{Dir: dir, Getenv: func(string) string { return "" }})
	require.NoError(t, err, "config.json:\n%s", data)
	assert.Empty(t, loaded.Warnings, "config.json:\n%s", data)
	require.True(t, bytes.HasPrefix(bytes.TrimSpace([]byte(data)), []byte("{")))
	return loaded.Config
}
