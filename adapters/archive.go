package adapters

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/archive/live"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/errs"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/storage"
)

// prepareRemote checks that an s3:// checkpoint can be written (bucket, credentials, name free)
// and makes the local directory CRIU writes the images into.
func prepareRemote(ctx context.Context, env *Env, dest storage.Location, name string) (final, work string, err error) {
	client, err := storage.New(env.S3)
	if err != nil {
		return "", "", errs.Invalid("%w", err)
	}
	if err := client.Check(ctx, dest.Bucket); err != nil {
		return "", "", err // storage's errors have their kinds
	}
	exists, err := client.Exists(ctx, dest)
	if err != nil {
		return "", "", err
	}
	if exists {
		return "", "", errs.Exists("checkpoint %s already exists: choose another --name or delete it first", dest)
	}
	work, err = os.MkdirTemp(env.TempDir, "cedana-dump-"+name+"-")
	if err != nil {
		return "", "", errs.Precondition("cannot create a temporary directory for the images: %w (set checkpoint.temp_dir)", err)
	}
	return dest.String(), work, nil
}

// CompressCheckpoint archives the images into the checkpoint's archive, local or in S3, while CRIU
// writes them (see package live), and completes it once everything inside has succeeded. CRIU resumes
// or kills the workload as soon as it is done with it: the archiving never adds to the time it is
// frozen, and its tail is the "compress" (or "upload") phase. The images are removed afterwards.
// If archiving fails after the dump stopped the workload, the uncompressed checkpoint is kept and
// the error says where, so nothing is lost.
func CompressCheckpoint(next DumpHandler) DumpHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse) (Dumped, error) {
		codec := codecOf(req)
		if codec == archive.None {
			return next(ctx, env, st, req, resp)
		}
		var out live.Sink
		var err error
		phase := "compress"
		if loc, remote, _ := storage.ParseURL(resp.Path); remote {
			phase = "upload"
			out, err = live.NewUploadSink(ctx, env.S3, loc)
		} else {
			out, err = live.NewFileSink(resp.Path)
		}
		if err != nil {
			return false, errs.Precondition("%w", err)
		}
		st.Progress.Start("archive", 0)
		arch, err := live.Start(st.ImageDir, out, codec, env.Workers, st.Progress)
		if err != nil {
			_ = out.Abort() // the archiver's failure is the one to tell
			return false, err
		}
		dumped, err := next(ctx, env, st, req, resp)
		if err != nil {
			arch.Abort()
			return dumped, err
		}
		start := time.Now()
		stored, err := arch.Finish()
		Observe(resp.Stats, phase, start)
		if err != nil {
			return dumped, err // PrepareDumpDir keeps the images if the workload was stopped
		}
		if resp.Stats != nil {
			resp.Stats.StoredBytes = stored
		}
		if err := os.RemoveAll(st.ImageDir); err != nil {
			st.Log.Warn("remove archived images", "path", st.ImageDir, "error", err)
		}
		return dumped, nil
	}
}

// keepImages keeps the images in work after a failure that followed the dump of a workload CRIU
// stopped: they are its only copy (see KeepImages). The error says where, and how to restore what
// lacks cedana's checkpoint.json.
func keepImages(work, name string, remote bool, cause error) error {
	kept, err := KeepImages(work, name, remote)
	if err != nil {
		return errs.Precondition("%w; the workload was checkpointed and stopped, and its images could not be kept either: %w", cause, err)
	}
	how := "restore it from there"
	if info, err := os.Stat(filepath.Join(kept, checkpoint.MetadataFile)); err != nil || !info.Mode().IsRegular() {
		how = fmt.Sprintf("it has no %s: restore it with `criu restore -D %s`", checkpoint.MetadataFile, kept)
	}
	return errs.Precondition("%w; the workload was checkpointed and stopped: its uncompressed checkpoint is kept at %s (%s)", cause, kept, how)
}

// KeepImages makes the images CRIU wrote into work an uncompressed checkpoint named name, and
// returns its directory: a hidden images directory (an archive's) becomes <dir>/<name> beside it,
// or a name beside that when it is taken; a temporary one (remote, an s3:// checkpoint's) becomes
// cedana-kept-<name> in the same temporary directory; an uncompressed checkpoint's directory
// stays where it is.
func KeepImages(work, name string, remote bool) (string, error) {
	base := filepath.Join(filepath.Dir(work), name)
	if remote { // work is a temporary directory, among others'
		base = filepath.Join(filepath.Dir(work), "cedana-kept-"+name)
	}
	if work == base {
		return work, nil
	}
	var err error
	// <dir>/<name> may be taken (only <name>.tar... was checked): then a name beside it.
	for _, to := range []string{base, fmt.Sprintf("%s.kept-%d", base, time.Now().UnixNano())} {
		if err = os.Rename(work, to); err == nil {
			return to, nil
		}
	}
	return "", err
}

// FetchCheckpoint makes the checkpoint at req.Path available as a directory of images (see
// FetchImages); a temporary one is removed after the restore.
func FetchCheckpoint(next RestoreHandler) RestoreHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		dir, temporary, err := FetchImages(ctx, env, st.Progress, req.Path, resp.Stats)
		if err != nil {
			return err
		}
		if temporary {
			defer os.RemoveAll(dir)
		}
		st.ImageDir = dir
		return next(ctx, env, st, req, resp)
	}
}

// FetchImages makes the checkpoint at path available as a local directory of images: a local
// directory is used as it is (temporary false); an archive file, or an s3:// object, is streamed
// (downloaded and) decompressed into a new directory under env.TempDir (temporary true), which
// the caller removes when done with it. It never needs more temporary disk than the uncompressed
// images. The phase's duration and the sizes go into stats (nil: not recorded).
func FetchImages(ctx context.Context, env *Env, progress *Progress, path string, stats *daemonv1.Stats) (dir string, temporary bool, err error) {
	loc, remote, _ := storage.ParseURL(path)
	if !remote {
		if info, err := os.Stat(path); err == nil && info.IsDir() {
			return path, false, nil
		}
	}
	tmp, err := os.MkdirTemp(env.TempDir, "cedana-restore-")
	if err != nil {
		return "", false, errs.Precondition("cannot create a temporary directory for the images: %w (set checkpoint.temp_dir)", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	var src io.ReadCloser
	var stored int64
	phase := "decompress"
	if remote {
		phase = "download"
		client, err := storage.New(env.S3)
		if err != nil {
			return "", false, errs.Invalid("%w", err)
		}
		if src, stored, err = client.Open(ctx, loc); err != nil {
			return "", false, err // not found, unreachable, ...: storage's errors have their kinds
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", false, errs.Precondition("open checkpoint %s: %w", path, err)
		}
		if info, err := f.Stat(); err == nil {
			stored = info.Size()
		}
		src = f
	}
	start := time.Now()
	progress.Start(phase, stored)
	raw, err := archive.Extract(bufio.NewReaderSize(countingReader{src, progress}, 1<<20), tmp, env.Workers)
	src.Close()
	Observe(stats, phase, start)
	if err != nil {
		return "", false, errs.Invalid("checkpoint %s cannot be read: %w", path, err)
	}
	if stats != nil {
		stats.RawBytes, stats.StoredBytes = raw, stored
	}
	return tmp, true, nil
}

// codecOf is the request's codec; no compression when it names none.
func codecOf(req *daemonv1.DumpRequest) archive.Codec {
	if req.Compression == "" {
		return archive.None
	}
	return archive.Codec(req.Compression)
}
