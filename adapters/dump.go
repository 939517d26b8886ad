package adapters

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage"
	"github.com/cedana/cedana/sysinfo"
	"github.com/cedana/cedana/version"
)

// TimeDump measures the whole dump into resp.Stats.Total.
func TimeDump(next DumpHandler) DumpHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (Dumped, error) {
		defer timeTotal(&resp.Stats)()
		return next(ctx, env, st, req, resp)
	}
}

// RemoteTarNote says why a dump to s3:// without compression wrote a tar.
const RemoteTarNote = "compression none: an s3:// checkpoint is one object, uploaded as an uncompressed tar"

// FillDumpDefaults fills the parent directory (env.CheckpointDir), the name
// (dump-<type>-<unix nanoseconds>), the codec (env.Compression, else none; none to s3:// is tar)
// and empty option and detail messages.
func FillDumpDefaults(next DumpHandler) DumpHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (Dumped, error) {
		if req.Dir == "" {
			req.Dir = env.CheckpointDir
		}
		if req.Name == "" {
			req.Name = fmt.Sprintf("dump-%s-%d", req.Type, time.Now().UnixNano())
		}
		if req.Compression == "" {
			req.Compression = env.Compression
		}
		if req.Compression == "" {
			req.Compression = string(archive.None)
		}
		if _, remote, _ := storage.ParseURL(req.Dir); remote && req.Compression == string(archive.None) {
			// An s3:// checkpoint is one object: as Cedana does, "none" uploads a plain tar.
			req.Compression = string(archive.Tar)
			OrNew(&resp.Stats).Notes = append(resp.Stats.Notes, RemoteTarNote)
			if st.Log != nil {
				st.Log.Info(RemoteTarNote)
			}
		}
		OrNew(&req.Criu)
		OrNew(&req.Details)
		return next(ctx, env, st, req, resp)
	}
}

// ValidateDumpRequest refuses a request without a type, a parent directory that is not absolute
// (or holds a NUL byte), or a name that is not a single, short enough path element. It looks at
// nothing but the request.
func ValidateDumpRequest(next DumpHandler) DumpHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (Dumped, error) {
		if req.Type == "" {
			return false, errs.Invalid("the request names no runtime: set type to a runtime's name (see `cedana features`)")
		}
		if req.Dir == "" {
			return false, errs.Invalid("no checkpoint directory: pass --dir or set checkpoint.dir in the config")
		}
		if strings.ContainsRune(req.Dir, 0) {
			return false, errs.Invalid("checkpoint directory %q contains a NUL byte", req.Dir)
		}
		codec := archive.None
		if req.Compression != "" {
			var err error
			if codec, err = archive.ParseCodec(req.Compression); err != nil {
				return false, errs.Invalid("%w", err)
			}
		}
		_, remote, err := storage.ParseURL(req.Dir)
		switch {
		case err != nil:
			return false, errs.Invalid("%w", err)
		case remote && codec == archive.None:
			return false, errs.Invalid("an s3:// checkpoint is one archive: set compression to tar, gzip, lz4, zlib or zstd")
		case !remote && !filepath.IsAbs(req.Dir):
			return false, errs.Invalid("checkpoint directory %q is not an absolute path", req.Dir)
		}
		if err := validateName(req.Name); err != nil {
			return false, err
		}
		return next(ctx, env, st, req, resp)
	}
}

// MaxNameLen bounds a checkpoint's name, in bytes, so that every file a dump makes of it fits in
// a file name (255 bytes): <name>.tar.zlib.partial while an archive is written, .<name>.images
// while CRIU writes. A longer name is refused here, as the bad argument it is, rather than by the
// file system later ("file name too long", which reads as a problem with the directory).
const MaxNameLen = 200

func validateName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return errs.Invalid("checkpoint name %q must be a plain file name (no '/', not starting with '.')", name)
	}
	if len(name) > MaxNameLen {
		return errs.Invalid("checkpoint name is %d bytes long: the limit is %d", len(name), MaxNameLen)
	}
	return nil
}

// PrepareDumpDir decides where the checkpoint goes and where CRIU writes its images, refusing a
// name that is taken, and points st.ImageDir at the images' directory:
//   - no compression: the checkpoint is the directory <dir>/<name>, and CRIU writes into it;
//   - an archive: CRIU writes into the hidden <dir>/.<name>.images, archived by CompressCheckpoint
//     into <dir>/<name>.tar[...];
//   - s3://bucket/prefix: CRIU writes into a temporary directory, archived and uploaded to
//     s3://bucket/prefix/<name>.tar[...]. The bucket and credentials are checked first, before the
//     workload is touched.
//
// If anything after it fails, what it created is removed, unless the handler it wraps says it
// checkpointed the workload (Dumped) and CRIU stopped it: then its images are its only copy and
// are kept.
func PrepareDumpDir(next DumpHandler) DumpHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (Dumped, error) {
		loc, remote, _ := storage.ParseURL(req.Dir)
		final, work, err := makeDumpDir(ctx, env, st, req, loc, remote)
		if err != nil {
			return false, err
		}
		if st.Journal != nil {
			if err := st.Journal.Begin(work, final); err != nil {
				os.RemoveAll(work)
				return false, fmt.Errorf("record the dump: %w", err)
			}
		}
		st.ImageDir = work
		resp.Path = final
		resp.Checkpoint = &daemonv1.Checkpoint{
			Name:          req.Name,
			Path:          final,
			Type:          req.Type,
			Hostname:      sysinfo.Hostname(),
			Kernel:        sysinfo.Kernel(),
			CedanaVersion: version.Version,
			Details:       req.Details,
			Compression:   req.Compression,
			Job:           st.Job,
		}
		dumped, err := next(ctx, env, st, req, resp)
		if err == nil {
			return dumped, nil
		}
		if dumped && !Dumped(survives(req)) {
			return dumped, keepImages(work, req.Name, remote || st.Send != nil, err)
		}
		if dumped {
			left := "running"
			if req.Criu.GetLeaveStopped() {
				left = "stopped"
			}
			err = errs.Precondition("%w (the workload was left %s; nothing was kept)", err, left)
		}
		if rmErr := os.RemoveAll(work); rmErr != nil {
			st.Log.Error("remove partial checkpoint", "path", work, "error", rmErr)
		}
		return dumped, err
	}
}

// survives reports whether the dumped workload outlives its dump: left running, or left stopped
// (a migration's, until the destination answers).
func survives(req *daemonv1.DumpRequest) bool {
	return req.Criu.GetLeaveRunning() || req.Criu.GetLeaveStopped()
}

// makeDumpDir makes the directory CRIU writes the images into (work) for the checkpoint final,
// as PrepareDumpDir says, refusing a name that is taken. A checkpoint sent elsewhere (st.Send)
// gets a temporary directory, for the files besides CRIU's images.
func makeDumpDir(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, loc storage.Location, remote bool) (final, work string, err error) {
	if st.Send != nil {
		work, err = os.MkdirTemp(env.TempDir, "cedana-migrate-"+req.Name+"-")
		if err != nil {
			return "", "", errs.Precondition("cannot create a temporary directory for the checkpoint: %w (set checkpoint.temp_dir)", err)
		}
		return st.Send.Name, work, nil
	}
	codec := codecOf(req)
	if remote {
		return prepareRemote(ctx, env, loc.Join(req.Name+codec.Extension()), req.Name)
	}
	if err := os.MkdirAll(req.Dir, 0o755); err != nil {
		return "", "", dirError(req.Dir, err)
	}
	final = filepath.Join(req.Dir, req.Name+codec.Extension())
	work = final
	if codec != archive.None {
		if _, err := os.Lstat(final); err == nil {
			return "", "", errs.Exists("checkpoint %s already exists: choose another --name or delete it first", final)
		}
		work = filepath.Join(req.Dir, "."+req.Name+".images")
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", "", errs.Exists("checkpoint %s already exists (or is being written): choose another --name or delete it first", final)
		}
		return "", "", dirError(req.Dir, err)
	}
	return final, work, nil
}

// dirError explains a directory the checkpoint cannot be created in (missing permission, a file
// in the way, a read-only file system, ...).
func dirError(dir string, err error) error {
	return errs.Precondition("cannot create the checkpoint in %s: %w; pass a writable --dir", dir, err)
}

// unwrapPath drops the *PathError's own path, which the callers' messages already name.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// WriteDumpMetadata writes checkpoint.json once everything after it succeeded, which marks the
// checkpoint complete: for an uncompressed checkpoint, once its images are durable too
// (checkpoint.Commit). The CRIU options recorded are the final ones, after runtime adapters.
func WriteDumpMetadata(next DumpHandler) DumpHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (Dumped, error) {
		dumped, err := next(ctx, env, st, req, resp)
		if err != nil {
			return dumped, err
		}
		ck := resp.Checkpoint
		ck.Options = proto.Clone(req.Criu).(*daemonv1.CriuOptions)
		ck.CreatedAt = timestamppb.Now()
		size, err := checkpoint.Size(st.ImageDir)
		if err != nil {
			return dumped, fmt.Errorf("measure checkpoint: %w", err)
		}
		size += st.DumpStream.Received() // images streamed into the archive are not in ImageDir
		ck.SizeBytes = size
		if resp.Stats != nil {
			resp.Stats.RawBytes, resp.Stats.StoredBytes = size, size
		}
		if codecOf(req) == archive.None {
			// The directory is the checkpoint: its images must be on disk before it says it is
			// complete. (An archive is synced whole when it is finished.)
			start := time.Now()
			err := checkpoint.Commit(st.ImageDir, ck)
			Observe(resp.Stats, "sync", start)
			return dumped, err
		}
		return dumped, checkpoint.Write(st.ImageDir, ck)
	}
}

// RecordTree records in ck the dumped tree rooted at pid, as /proc shows it before the dump: the
// root's PID, every PID, root first, and the root's command line. It returns the PIDs. (After the
// dump, withcriu.Dump replaces the PIDs with those CRIU froze.)
func RecordTree(ck *daemonv1.Checkpoint, pid int) []int {
	tree := sysinfo.Tree(pid)
	ck.Pid = int32(pid)
	ck.Pids = make([]int32, len(tree))
	for i, p := range tree {
		ck.Pids[i] = int32(p)
	}
	ck.Cmdline, _ = sysinfo.Cmdline(pid)
	return tree
}
