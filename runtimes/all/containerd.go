//go:build !custom || runtimes || runtimes.containerd

package all

import _ "github.com/cedana/cedana/runtimes/containerd" // registers the containerd runtime
