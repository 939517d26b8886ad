// Package k8s is cedana's Kubernetes node integration: the names the runtime handler and its
// installation share. `cedana k8s setup` installs the runtime handler into containerd's CRI
// configuration; the handler (package k8s/runtimehandler) is the cedana binary called through a
// symlink named WrapperName, which containerd's runc shim runs instead of runc.
package k8s

const (
	// RuntimeHandler is the CRI runtime handler's name: a RuntimeClass's handler, and the
	// runtime's key in containerd's CRI configuration.
	RuntimeHandler = "cedana"
	// WrapperName is the name of the symlink to the cedana binary that the runc shim runs as its
	// runc (the runtime's options.BinaryName): cedana acts as the runtime handler when called so.
	WrapperName = "cedana-runc"
	// RestoreAnnotation names the pod checkpoint to restore a pod's containers from (a directory
	// or an s3:// URL); set on the pod, it reaches its containers' OCI specs.
	RestoreAnnotation = "cedana.io/restore"
	// AnnotationPrefix is what containerd's pod_annotations must let through for RestoreAnnotation
	// to reach the containers' specs.
	AnnotationPrefix = "cedana.io/*"
	// PodManifestFile is the name of a pod checkpoint's manifest: a daemonv1.PodCheckpoint in
	// protojson, at the checkpoint's location.
	PodManifestFile = "pod.json"
)
