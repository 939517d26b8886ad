package server

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cedana/cedana/chain"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/jobs"
)

// The checks of each request, one function per request, which its handler calls before it does
// anything else. They look at nothing but the request, so that a bad request is an
// invalid_argument error whatever the state of the machine (and so that fuzz targets can run
// them). A dump's and a restore's own fields are checked by the first adapters of their chains
// (chain.DumpChecks, chain.RestoreChecks); a runtime checks its details itself.

const (
	// maxCheckpointIDLen bounds a checkpoint ID (store.NewCheckpointID makes 13 bytes).
	maxCheckpointIDLen = 64
	// maxOperationIDLen bounds a client-chosen operation ID.
	maxOperationIDLen = 128
	// maxSignal is the highest signal number on Linux (SIGRTMAX).
	maxSignal = 64
)

func validateDump(req *daemonv1.DumpRequest) error {
	return firstError(noNUL(req), optionalJID(req.Jid), checkOperationID(req.OperationId, false))
}

func validateRestore(req *daemonv1.RestoreRequest) error {
	if err := firstError(noNUL(req), optionalJID(req.Jid), checkOperationID(req.OperationId, false)); err != nil {
		return err
	}
	switch {
	case req.NewJob && req.Jid != "":
		return errs.Invalid("a job's restore (jid %s) runs that job again: new_job is for a restore by path", req.Jid)
	case req.Log != "" && !req.NewJob:
		return errs.Invalid("log is a new job's: set new_job, or restore the job (its own log)")
	case req.Log != "" && !filepath.IsAbs(req.Log):
		return errs.Invalid("log %q is not an absolute path", req.Log)
	}
	return nil
}

func validateRun(req *daemonv1.RunRequest) error {
	if err := firstError(noNUL(req), requireType(req.Type), optionalJID(req.Jid)); err != nil {
		return err
	}
	if req.Log != "" && !filepath.IsAbs(req.Log) {
		return errs.Invalid("log %q is not an absolute path", req.Log)
	}
	return nil
}

func validateManage(req *daemonv1.ManageRequest) error {
	return firstError(noNUL(req), requireType(req.Type), optionalJID(req.Jid))
}

func validateGetJob(req *daemonv1.GetJobRequest) error { return requireJID(req.Jid) }

func validateKillJob(req *daemonv1.KillJobRequest) error {
	if req.Signal < 0 || req.Signal > maxSignal {
		return errs.Invalid("signal %d is out of range 1-%d (0 sends SIGKILL)", req.Signal, maxSignal)
	}
	return requireJIDs(req.Jids, "kill")
}

func validateDeleteJob(req *daemonv1.DeleteJobRequest) error { return requireJIDs(req.Jids, "delete") }

func validateAttach(req *daemonv1.AttachRequest) error {
	if req.TailLines < 0 {
		return errs.Invalid("tail_lines %d is negative (0 sends the default, 20)", req.TailLines)
	}
	return requireJID(req.Jid)
}

func validateWriteStdin(req *daemonv1.WriteStdinRequest) error { return requireJID(req.Jid) }

func validateWatchProgress(req *daemonv1.WatchProgressRequest) error {
	return checkOperationID(req.OperationId, true)
}

func validateListCheckpoints(req *daemonv1.ListCheckpointsRequest) error {
	return optionalJID(req.Jid)
}

func validateGetCheckpoint(req *daemonv1.GetCheckpointRequest) error {
	return requireCheckpointID(req.Id)
}

func validateDeleteCheckpoint(req *daemonv1.DeleteCheckpointRequest) error {
	return requireCheckpointID(req.Id)
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func requireType(typ string) error {
	if typ == "" {
		return chain.NoRuntime()
	}
	return nil
}

func requireJID(jid string) error {
	if jid == "" {
		return errs.Invalid("no job ID: give the job's JID (see `cedana ps`)")
	}
	return jobs.ValidateJID(jid)
}

func optionalJID(jid string) error {
	if jid == "" {
		return nil
	}
	return jobs.ValidateJID(jid)
}

// requireJIDs checks a request's list of jobs to verb.
func requireJIDs(jids []string, verb string) error {
	if len(jids) == 0 {
		return errs.Invalid("no job to %s: give at least one JID (see `cedana ps`)", verb)
	}
	for _, jid := range jids {
		if err := requireJID(jid); err != nil {
			return err
		}
	}
	return nil
}

// requireCheckpointID allows the IDs the catalog could hold: 1 to maxCheckpointIDLen letters,
// digits, '-', '_' and '.'.
func requireCheckpointID(id string) error {
	switch {
	case id == "":
		return errs.Invalid("no checkpoint ID: give one (see `cedana checkpoint list`)")
	case len(id) > maxCheckpointIDLen:
		return errs.Invalid("checkpoint ID of %d bytes is too long: the limit is %d", len(id), maxCheckpointIDLen)
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.", r)) {
			return errs.Invalid("checkpoint ID %q holds %q: IDs are letters, digits, '-', '_' and '.' (see `cedana checkpoint list`)", id, r)
		}
	}
	return nil
}

// checkOperationID allows up to maxOperationIDLen printable characters; the empty ID (nothing to
// watch) only when the ID is not required.
func checkOperationID(id string, required bool) error {
	switch {
	case id == "" && required:
		return errs.Invalid("no operation ID: give the operation_id of the dump or restore to watch")
	case len(id) > maxOperationIDLen:
		return errs.Invalid("operation ID of %d bytes is too long: the limit is %d", len(id), maxOperationIDLen)
	}
	if i := strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
		return errs.Invalid("operation ID %q holds a control character at byte %d", id, i)
	}
	return nil
}

// noNUL refuses a NUL byte in any string of msg: each ends up as a path, an argument, an ID or a
// key, none of which can hold one, and a NUL byte would be refused later as if the machine, not
// the request, were at fault. The error names the field ("process.args[1]").
func noNUL(msg proto.Message) error {
	if field := findNUL(msg.ProtoReflect(), ""); field != "" {
		return errs.Invalid("%s contains a NUL byte", field)
	}
	return nil
}

// findNUL returns the path of the first string field of m, below prefix, that holds a NUL byte.
func findNUL(m protoreflect.Message, prefix string) string {
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			list := v.List()
			for i := 0; i < list.Len() && found == ""; i++ {
				found = nulIn(fd, list.Get(i), fmt.Sprintf("%s[%d]", name, i))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				key := k.String()
				if strings.ContainsRune(key, 0) {
					found = name
				} else {
					found = nulIn(fd.MapValue(), v, fmt.Sprintf("%s[%q]", name, key))
				}
				return found == ""
			})
		default:
			found = nulIn(fd, v, name)
		}
		return found == ""
	})
	return found
}

// nulIn returns name when v, a value of field fd, is or holds a string with a NUL byte.
func nulIn(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if strings.ContainsRune(v.String(), 0) {
			return name
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return findNUL(v.Message(), name+".")
	}
	return ""
}
