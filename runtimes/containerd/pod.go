package containerd

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/cedana/cedana/errs"
)

// The names under which the kubelet (container labels) and containerd's CRI plugin (OCI spec
// annotations) record which pod a container belongs to.
const (
	// K8sNamespace is the containerd namespace of containerd's CRI plugin.
	K8sNamespace = "k8s.io"

	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	labelKind          = "io.cri-containerd.kind"

	annotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	annotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	annotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	annotationContainerName    = "io.kubernetes.cri.container-name"
	annotationContainerType    = "io.kubernetes.cri.container-type"
	annotationImageName        = "io.kubernetes.cri.image-name"

	kindSandbox = "sandbox"
)

// podMember is a containerd container as the pod it belongs to sees it.
type podMember struct {
	ID        string // containerd's ID
	Name      string // the container's name in the pod
	Image     string // the image, as the CRI names it
	Pod       string // the pod's name
	Namespace string // the pod's Kubernetes namespace
	UID       string // the pod's UID
	Sandbox   bool   // the pod's sandbox (pause) container, never dumped
	Runtime   string // containerd's runtime of the container
	Running   bool   // it has a running task
}

// describeMember reads what a container's labels, or else its spec's annotations, say of its pod:
// the kubelet labels the containers it makes; a pod made through the CRI directly (crictl) has
// only the CRI's annotations. image is containerd's image of the container, used when the CRI
// names none.
func describeMember(id, image, runtime string, labels, annotations map[string]string) podMember {
	pick := func(label, annotation string) string { return cmp.Or(labels[label], annotations[annotation]) }
	return podMember{
		ID:        id,
		Name:      pick(labelContainerName, annotationContainerName),
		Image:     cmp.Or(annotations[annotationImageName], image),
		Pod:       pick(labelPodName, annotationSandboxName),
		Namespace: pick(labelPodNamespace, annotationSandboxNamespace),
		UID:       pick(labelPodUID, annotationSandboxUID),
		Sandbox:   labels[labelKind] == kindSandbox || annotations[annotationContainerType] == kindSandbox,
		Runtime:   runtime,
	}
}

// podQuery is which pod's containers a pod dump takes, and where it looks for them.
type podQuery struct {
	Pod, Namespace string   // the pod, as Kubernetes names it
	Names          []string // only these containers (all when empty)
	CtrNamespace   string   // containerd's namespace of the CRI
	Address        string   // containerd's socket
}

// selectPod picks, from the containers of containerd's namespace, the running app containers of
// the pod q names, sorted by name. Errors say what was searched and how to look.
func selectPod(members []podMember, q podQuery) ([]podMember, error) {
	pod := q.Namespace + "/" + q.Pod
	var apps []podMember
	found := false
	for _, m := range members {
		if m.Pod != q.Pod || m.Namespace != q.Namespace {
			continue
		}
		found = true
		if !m.Sandbox {
			apps = append(apps, m)
		}
	}
	if !found {
		return nil, errs.NotFound("no pod %s: containerd at %s has no container of pod %q of Kubernetes namespace %q in its namespace %q "+
			"(see `crictl pods --name %s` or `kubectl get pods -n %s`; --containerd-address and --containerd-namespace select another containerd)",
			pod, q.Address, q.Pod, q.Namespace, q.CtrNamespace, q.Pod, q.Namespace)
	}
	var names []string
	for _, m := range apps {
		if !slices.Contains(names, m.Name) {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	for _, name := range q.Names {
		if !slices.Contains(names, name) {
			return nil, errs.NotFound("pod %s has no container %q: its containers are %s", pod, name, orNone(names))
		}
	}
	var running []podMember
	for _, m := range apps {
		if m.Running && (len(q.Names) == 0 || slices.Contains(q.Names, m.Name)) {
			running = append(running, m)
		}
	}
	if len(running) == 0 {
		which := "no running container"
		if len(q.Names) > 0 {
			which = "no running container named " + strings.Join(q.Names, ", ")
		}
		return nil, errs.Precondition("pod %s has %s: there is nothing to checkpoint (its containers: %s; see `crictl ps -a --name <container>`)",
			pod, which, orNone(names))
	}
	slices.SortFunc(running, func(a, b podMember) int { return cmp.Compare(a.Name, b.Name) })
	for i, m := range running {
		switch {
		case m.Name == "":
			return nil, errs.Precondition("container %s of pod %s has no name in the pod (label %s or annotation %s)", m.ID, pod, labelContainerName, annotationContainerName)
		case i > 0 && running[i-1].Name == m.Name:
			return nil, errs.Precondition("pod %s runs two containers named %q (%s and %s): remove the stale one", pod, m.Name, running[i-1].ID, m.ID)
		case m.UID != running[0].UID:
			return nil, errs.Precondition("two pods named %s run (UIDs %s and %s): wait until the old one is gone", pod, running[0].UID, m.UID)
		case m.Runtime != RuncShim:
			return nil, errs.Precondition("container %q (%s) of pod %s runs under %s: cedana checkpoints containers of containerd's runc shim (%s)",
				m.Name, m.ID, pod, m.Runtime, RuncShim)
		}
	}
	return running, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// listMembers describes the containers of nsCtx's namespace that belong to pod q names (their
// labels or annotations say so), with whether each has a running task.
func listMembers(nsCtx context.Context, c *client.Client, q podQuery) ([]podMember, error) {
	ctrs, err := c.Containers(nsCtx)
	if err != nil {
		return nil, fmt.Errorf("list the containers of containerd namespace %q: %w", q.CtrNamespace, err)
	}
	var members []podMember
	for _, ctr := range ctrs {
		info, err := ctr.Info(nsCtx, client.WithoutRefreshedMetadata)
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", ctr.ID(), err)
		}
		if name := info.Labels[labelPodName]; name != "" && name != q.Pod {
			continue // the kubelet's label says: another pod
		}
		spec, err := ctr.Spec(nsCtx)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("spec of container %s: %w", ctr.ID(), err)
		}
		m := describeMember(ctr.ID(), info.Image, info.Runtime.Name, info.Labels, spec.Annotations)
		if m.Pod != q.Pod || m.Namespace != q.Namespace {
			continue
		}
		if !m.Sandbox {
			m.Running = hasRunningTask(nsCtx, ctr)
		}
		members = append(members, m)
	}
	return members, nil
}

// hasRunningTask reports whether the container has a task that runs (a paused one does not
// count: its owner paused it).
func hasRunningTask(ctx context.Context, ctr client.Container) bool {
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return false
	}
	st, err := task.Status(ctx)
	return err == nil && st.Status == client.Running
}
