package containerd

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kubeletLabels are the labels the kubelet (through the CRI) puts on a container of pod ns/pod.
func kubeletLabels(pod, ns, uid, name, kind string) map[string]string {
	l := map[string]string{labelPodName: pod, labelPodNamespace: ns, labelPodUID: uid, labelKind: kind}
	if name != "" {
		l[labelContainerName] = name
	}
	return l
}

// criAnnotations are the annotations the CRI puts into a container's spec.
func criAnnotations(pod, ns, uid, name, kind, image string) map[string]string {
	a := map[string]string{
		annotationSandboxName: pod, annotationSandboxNamespace: ns, annotationSandboxUID: uid,
		annotationContainerType: kind, annotationImageName: image,
	}
	if name != "" {
		a[annotationContainerName] = name
	}
	return a
}

func TestDescribeMember(t *testing.T) {
	tests := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		want        podMember
	}{
		{
			"kubelet labels and CRI annotations",
			kubeletLabels("web", "prod", "u1", "app", "container"),
			criAnnotations("web", "prod", "u1", "app", "container", "docker.io/library/app:1"),
			podMember{ID: "c1", Name: "app", Image: "docker.io/library/app:1", Pod: "web", Namespace: "prod", UID: "u1", Runtime: RuncShim},
		},
		{
			"labels win over annotations",
			kubeletLabels("web", "prod", "u1", "app", "container"),
			criAnnotations("other", "dev", "u2", "other", "container", ""),
			podMember{ID: "c1", Name: "app", Image: "sha256:img", Pod: "web", Namespace: "prod", UID: "u1", Runtime: RuncShim},
		},
		{
			"annotations only (crictl)",
			nil,
			criAnnotations("web", "prod", "u1", "app", "container", "app:1"),
			podMember{ID: "c1", Name: "app", Image: "app:1", Pod: "web", Namespace: "prod", UID: "u1", Runtime: RuncShim},
		},
		{
			"sandbox by label",
			kubeletLabels("web", "prod", "u1", "", kindSandbox),
			nil,
			podMember{ID: "c1", Image: "sha256:img", Pod: "web", Namespace: "prod", UID: "u1", Sandbox: true, Runtime: RuncShim},
		},
		{
			"sandbox by annotation",
			nil,
			criAnnotations("web", "prod", "u1", "", kindSandbox, ""),
			podMember{ID: "c1", Image: "sha256:img", Pod: "web", Namespace: "prod", UID: "u1", Sandbox: true, Runtime: RuncShim},
		},
		{
			"no pod at all",
			map[string]string{"other": "x"},
			map[string]string{},
			podMember{ID: "c1", Image: "sha256:img", Runtime: RuncShim},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, describeMember("c1", "sha256:img", RuncShim, tt.labels, tt.annotations))
		})
	}
}

func TestSelectPod(t *testing.T) {
	app := func(id, name, pod string, running bool) podMember {
		return podMember{ID: id, Name: name, Pod: pod, Namespace: "prod", UID: "u-" + pod, Runtime: RuncShim, Running: running}
	}
	sandbox := podMember{ID: "s", Pod: "web", Namespace: "prod", UID: "u-web", Sandbox: true, Runtime: RuncShim, Running: true}
	members := []podMember{
		sandbox,
		app("c2", "sidecar", "web", true),
		app("c1", "app", "web", true),
		app("c0", "app-old", "web", false),
		app("x1", "app", "other", true),
		{ID: "d1", Name: "app", Pod: "web", Namespace: "dev", UID: "u-dev", Runtime: RuncShim, Running: true},
	}
	q := podQuery{Pod: "web", Namespace: "prod", CtrNamespace: "k8s.io", Address: "/run/containerd/containerd.sock"}
	ids := func(ms []podMember) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}

	got, err := selectPod(members, q)
	require.NoError(t, err)
	assert.Equal(t, []string{"c1", "c2"}, ids(got), "the running app containers, by name; no sandbox, no other pod or namespace")

	q.Names = []string{"sidecar"}
	got, err = selectPod(members, q)
	require.NoError(t, err)
	assert.Equal(t, []string{"c2"}, ids(got))

	q.Names = []string{"nope"}
	_, err = selectPod(members, q)
	require.Error(t, err)
	assert.True(t, errdefs.IsNotFound(err))
	assert.Contains(t, err.Error(), `pod prod/web has no container "nope": its containers are app, app-old, sidecar`)

	q.Names = []string{"app-old"}
	_, err = selectPod(members, q)
	require.Error(t, err)
	assert.True(t, errdefs.IsFailedPrecondition(err))
	assert.Contains(t, err.Error(), "no running container named app-old")

	q.Names = nil
	q.Pod = "ghost"
	_, err = selectPod(members, q)
	require.Error(t, err)
	assert.True(t, errdefs.IsNotFound(err))
	for _, want := range []string{"no pod prod/ghost", "/run/containerd/containerd.sock", `namespace "k8s.io"`, "crictl pods", "kubectl get pods -n prod"} {
		assert.Contains(t, err.Error(), want)
	}

	q.Pod = "web"
	_, err = selectPod([]podMember{sandbox, app("c0", "app", "web", false)}, q)
	require.Error(t, err)
	assert.True(t, errdefs.IsFailedPrecondition(err))
	assert.Contains(t, err.Error(), "pod prod/web has no running container")

	_, err = selectPod([]podMember{sandbox}, q)
	require.Error(t, err, "a pod of only its sandbox")
	assert.True(t, errdefs.IsFailedPrecondition(err))

	kata := app("k1", "app", "web", true)
	kata.Runtime = "io.containerd.kata.v2"
	_, err = selectPod([]podMember{kata}, q)
	require.Error(t, err)
	assert.True(t, errdefs.IsFailedPrecondition(err))
	assert.Contains(t, err.Error(), "runs under io.containerd.kata.v2")

	_, err = selectPod([]podMember{app("c1", "app", "web", true), app("c9", "app", "web", true)}, q)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `two containers named "app"`)
}
