package adapters

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/archive/live"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/criu/imgstream"
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
		if st.Send != nil {
			phase, out = "send", st.Send.Sink
		} else if loc, remote, _ := storage.ParseURL(resp.Path); remote {
			phase = "upload"
			out, err = live.NewUploadSink(ctx, env.S3, loc)
		} else {
			out, err = live.NewFileSink(resp.Path)
		}
		if err != nil {
			return false, errs.Precondition("%w", err)
		}
		st.Progress.Start("archive", 0)
		if env.StreamImages {
			return streamArchive(ctx, env, st, req, resp, next, out, codec, phase)
		}
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
		return dumped, finishLive(st, resp, arch, phase)
	}
}

// localPath is path, or "" for an s3:// URL.
func localPath(path string) string {
	if storage.IsURL(path) {
		return ""
	}
	return path
}

// finishLive completes the archive the live archiver made and removes the images.
func finishLive(st State, resp *daemonv1.DumpResponse, arch *live.Archiver, phase string) error {
	start := time.Now()
	stored, err := arch.Finish()
	Observe(resp.Stats, phase, start)
	if err != nil {
		return err // PrepareDumpDir keeps the images if the workload was stopped
	}
	if resp.Stats != nil {
		resp.Stats.StoredBytes = stored
	}
	if err := os.RemoveAll(st.ImageDir); err != nil {
		st.Log.Warn("remove archived images", "path", st.ImageDir, "error", err)
	}
	return nil
}

// streamArchive offers the handler to stream CRIU's images into the archive (DumpStream). CRIU
// resumes or kills the workload once it has handed everything over, which takes no longer than
// writing the images: they wait in memory (then in a spill file) while the archive is written,
// in the order a restore reads them. A handler that declines gets the live archiver.
func streamArchive(ctx context.Context, env *Env, st State, req *daemonv1.DumpRequest, resp *daemonv1.DumpResponse,
	next DumpHandler, out live.Sink, codec archive.Codec, phase string,
) (Dumped, error) {
	defer returnMemory()
	var arch *live.Archiver
	ds := &DumpStream{
		memLimit: env.StreamMemory, spillDir: cmp.Or(env.TempDir, os.TempDir()), progress: st.Progress, dest: localPath(resp.Path), pool: env.StreamPool, workers: env.Workers,
		survives: survives(req), inMemory: st.Send != nil,
		writer: func() (*archive.Writer, error) {
			if codec.Concatenable() {
				// The pages are compressed apart (imgstream.EncodingSink): the rest is small, and
				// one core's encoder holds less memory.
				return archive.NewWriter(out, codec, 1)
			}
			return archive.NewWriter(out, codec, env.Workers)
		},
		plain: func(why string) error {
			note(resp.Stats, NotStreamedNote+why)
			var err error
			arch, err = live.Start(st.ImageDir, out, codec, env.Workers, st.Progress)
			return err
		},
	}
	st.DumpStream = ds
	dumped, err := next(ctx, env, st, req, resp)
	switch {
	case err != nil && ds.Streamed():
		if dumped && !Dumped(ds.survives) {
			// The workload is checkpointed and gone: its images must survive for
			// PrepareDumpDir to keep.
			err = ds.rescue(st.ImageDir, err)
		}
		ds.capture.Abort()
		_ = out.Abort()
		return dumped, err
	case err != nil && arch != nil:
		arch.Abort()
		return dumped, err
	case err != nil:
		_ = out.Abort()
		return dumped, err
	case arch != nil:
		return dumped, finishLive(st, resp, arch, phase)
	case !ds.Streamed():
		// The handler ran no CRIU of ours: archive what it left.
		if err := ds.plain("the handler wrote its images itself"); err != nil {
			_ = out.Abort()
			return dumped, err
		}
		return dumped, finishLive(st, resp, arch, phase)
	}
	start := time.Now()
	stored, err := ds.finish(st.ImageDir, out)
	Observe(resp.Stats, phase, start)
	if err != nil {
		return dumped, err // PrepareDumpDir keeps the images finish wrote into ImageDir
	}
	note(resp.Stats, StreamedNote)
	if ds.unreserved != "" {
		note(resp.Stats, UnreservedNote+ds.unreserved)
	}
	if ds.reserved > 0 {
		observeFor(resp.Stats, ReservePhase, ds.reserved)
	}
	if ds.captured.Encoded > 0 {
		note(resp.Stats, OverlapNote)
	}
	if ds.captured.Placed > 0 {
		note(resp.Stats, PlacedNote)
	}
	cs := ds.captured
	st.Log.Info("streamed images archived", "images", cs.Images, "bytes", cs.Bytes, "peak_memory", cs.PeakMemory,
		"spilled", cs.Spilled, "compressed_ahead", cs.Encoded, "compressed_after", cs.EncodedLater, "placed", cs.Placed,
		"placed_moved", ds.placedMoved())
	if resp.Stats != nil {
		resp.Stats.StoredBytes = stored
	}
	if err := os.RemoveAll(st.ImageDir); err != nil {
		st.Log.Warn("remove the checkpoint's work directory", "path", st.ImageDir, "error", err)
	}
	return dumped, nil
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

// FetchCheckpoint makes the checkpoint at req.Path available to the restore: a directory as it is;
// an archive, local or s3://, as a stream the handler feeds CRIU from (RestoreStream) when
// checkpoint.stream_images is on, or else unpacked into a temporary directory (FetchImages).
// Temporary directories are removed after the restore, unless the handler holds them (State.Images).
func FetchCheckpoint(next RestoreHandler) RestoreHandler {
	return func(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse) error {
		if st.Receive != nil || (env.StreamImages && !isDir(req.Path)) {
			return streamCheckpoint(ctx, env, st, req, resp, next)
		}
		dir, temporary, err := FetchImages(ctx, env, st.Progress, req.Path, resp.Stats)
		if err != nil {
			return err
		}
		if temporary {
			st.Images = newImagesHold(dir)
			defer st.Images.release()
		}
		st.ImageDir = dir
		return next(ctx, env, st, req, resp)
	}
}

// isDir reports whether path is a local directory (an s3:// URL is not).
func isDir(path string) bool {
	if storage.IsURL(path) {
		return false
	}
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}

// maxMetadataSize bounds the checkpoint.json read from an archive.
const maxMetadataSize = 16 << 20

// streamCheckpoint reads the archive at req.Path up to its checkpoint.json, into a temporary
// directory that becomes st.ImageDir, and offers the rest as st.RestoreStream. An archive that
// has its checkpoint.json at the end (written by an older cedana) still works: what comes before
// waits in memory and spill files.
func streamCheckpoint(ctx context.Context, env *Env, st State, req *daemonv1.RestoreRequest, resp *daemonv1.RestoreResponse, next RestoreHandler) error {
	defer returnMemory()
	// A migration's stream (st.Receive) is the archive; req.Path only names it then.
	src, stored, phase, err := io.NopCloser(st.Receive), int64(0), "receive", error(nil)
	if st.Receive == nil {
		src, stored, phase, err = openArchive(ctx, env, req.Path)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	st.Images, err = imagesTempDir(env)
	if err != nil {
		return err
	}
	defer st.Images.release()
	tmp := st.Images.dir
	start := time.Now()
	st.Progress.Start(phase, stored)
	ts, err := archive.OpenTar(countingReader{src, st.Progress}, env.Workers)
	if err != nil {
		return errs.Invalid("checkpoint %s cannot be read: %w", req.Path, err)
	}
	defer ts.Close()
	images := imgstream.NewArchiveSource(ts, env.StreamMemory, cmp.Or(env.TempDir, os.TempDir()))
	if err := copyMetadata(images, tmp); err != nil {
		return errs.Invalid("checkpoint %s cannot be read: %w", req.Path, err)
	}
	if err := images.ReadIndex(); err != nil {
		return errs.Invalid("checkpoint %s cannot be read: %w", req.Path, err)
	}
	st.ImageDir = tmp
	rs := &RestoreStream{dir: tmp, src: images}
	st.RestoreStream = rs
	err = next(ctx, env, st, req, resp)
	Observe(resp.Stats, phase, start)
	if resp.Stats != nil {
		resp.Stats.StoredBytes = stored
	}
	if rs.served {
		note(resp.Stats, RestoreFromNote)
	} else if rs.why != "" {
		note(resp.Stats, UnpackedFirstNote+rs.why)
	}
	return err
}

// copyMetadata copies the archive's checkpoint.json into dir.
func copyMetadata(images *imgstream.ArchiveSource, dir string) error {
	r, err := images.Open(checkpoint.MetadataFile)
	if err != nil {
		return err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxMetadataSize+1))
	if err != nil {
		return err
	}
	if len(data) > maxMetadataSize {
		return fmt.Errorf("its %s is over %d bytes", checkpoint.MetadataFile, maxMetadataSize)
	}
	return os.WriteFile(filepath.Join(dir, checkpoint.MetadataFile), data, 0o600)
}

// openArchive opens the archive at path, a local file or an s3:// object, and returns its size and
// the name of the phase that reads it (decompress, or download).
func openArchive(ctx context.Context, env *Env, path string) (io.ReadCloser, int64, string, error) {
	loc, remote, _ := storage.ParseURL(path)
	if remote {
		client, err := storage.New(env.S3)
		if err != nil {
			return nil, 0, "", errs.Invalid("%w", err)
		}
		src, stored, err := client.Open(ctx, loc)
		if err != nil {
			return nil, 0, "", err // not found, unreachable, ...: storage's errors have their kinds
		}
		return src, stored, "download", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, "", errs.Precondition("open checkpoint %s: %w", path, err)
	}
	var stored int64
	if info, err := f.Stat(); err == nil {
		stored = info.Size()
	}
	return f, stored, "decompress", nil
}

// FetchImages makes the checkpoint at path available as a local directory of images: a local
// directory is used as it is (temporary false); an archive file, or an s3:// object, is streamed
// (downloaded and) decompressed into a new directory under env.TempDir (temporary true), which
// the caller removes when done with it. It never needs more temporary disk than the uncompressed
// images. The phase's duration and the sizes go into stats (nil: not recorded).
func FetchImages(ctx context.Context, env *Env, progress *Progress, path string, stats *daemonv1.Stats) (dir string, temporary bool, err error) {
	if isDir(path) {
		return path, false, nil
	}
	src, stored, phase, err := openArchive(ctx, env, path)
	if err != nil {
		return "", false, err
	}
	defer src.Close()
	tmp, err := imagesTempDir(env)
	if err != nil {
		return "", false, err
	}
	start := time.Now()
	progress.Start(phase, stored)
	raw, err := archive.Extract(bufio.NewReaderSize(countingReader{src, progress}, 1<<20), tmp.dir, env.Workers)
	Observe(stats, phase, start)
	if err != nil {
		tmp.release()
		return "", false, errs.Invalid("checkpoint %s cannot be read: %w", path, err)
	}
	if stats != nil {
		stats.RawBytes, stats.StoredBytes = raw, stored
	}
	return tmp.dir, true, nil
}

// imagesTempDir makes a temporary directory for a checkpoint's images under checkpoint.temp_dir,
// removed when its last holder releases it (ImagesHold).
func imagesTempDir(env *Env) (*ImagesHold, error) {
	dir, err := os.MkdirTemp(env.TempDir, "cedana-restore-")
	if err != nil {
		return nil, errs.Precondition("cannot create a temporary directory for the images: %w (set checkpoint.temp_dir)", err)
	}
	return newImagesHold(dir), nil
}

// codecOf is the request's codec; no compression when it names none.
func codecOf(req *daemonv1.DumpRequest) archive.Codec {
	if req.Compression == "" {
		return archive.None
	}
	return archive.Codec(req.Compression)
}
