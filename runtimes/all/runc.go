//go:build !custom || runtimes || runtimes.runc

package all

import _ "github.com/cedana/cedana/runtimes/runc" // registers the runc runtime
