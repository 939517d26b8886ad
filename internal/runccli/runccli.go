// Package runccli is what cedana knows of runc's command line, for every package that runs runc
// or stands in for it (the runc-based runtimes, the Kubernetes runtime handler): runc's JSON log
// (--log-format json), read and written the way containerd's shim reads it, and the `runc
// restore` flags that a checkpoint's CRIU options need.
package runccli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// LastError is the last error runc wrote to its JSON log at path, "" if none.
func LastError(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) != nil {
			continue
		}
		if entry.Level == "error" || entry.Level == "fatal" {
			last = strings.TrimSpace(entry.Msg)
		}
	}
	return last
}

// Log formats of runc's --log-format.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// WriteError writes msg as an error line to w in runc's log format (FormatJSON, else logrus's
// text format), as runc writes its own: containerd's shim takes the last error line of runc's
// --log file as the reason a command failed, and so do kubelet's events.
func WriteError(w io.Writer, format, msg string, now time.Time) error {
	var line []byte
	if format == FormatJSON {
		var err error
		line, err = json.Marshal(struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}{"error", msg, now.Format(time.RFC3339Nano)})
		if err != nil {
			return err
		}
	} else {
		line = fmt.Appendf(nil, "time=%q level=error msg=%s", now.Format(time.RFC3339Nano), strconv.Quote(msg))
	}
	_, err := w.Write(append(line, '\n'))
	return err
}

// RestoreFlags are the `runc restore` flags the CRIU options a checkpoint was dumped with need.
func RestoreFlags(opts *daemonv1.CriuOptions) []string {
	var flags []string
	if opts.GetTcpEstablished() {
		flags = append(flags, "--tcp-established")
	}
	if opts.GetFileLocks() {
		flags = append(flags, "--file-locks")
	}
	return flags
}

// RefuseRestoreOptions refuses the CRIU restore options that a restore through runc (`runc
// restore`, containerd's shim) cannot pass on, naming the way to get the same effect.
func RefuseRestoreOptions(opts *daemonv1.CriuOptions) error {
	switch {
	case opts.GetLeaveStopped():
		return errs.Invalid("--leave-stopped: runc restore cannot leave a container stopped: restore it, then `cedana freeze` it")
	case opts.GetTcpClose():
		return errs.Invalid("--tcp-close: runc restore cannot close TCP connections; only a process tree's restore can")
	}
	return nil
}
