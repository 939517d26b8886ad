//go:build !custom || runtimes || runtimes.process

package all

import _ "github.com/cedana/cedana/runtimes/process" // registers the process runtime
