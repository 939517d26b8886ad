// Streamed images (criu --stream): what the archive adapters offer a handler, and how they finish.

package adapters

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/archive/live"
	"github.com/cedana/cedana/checkpoint"
	"github.com/cedana/cedana/criu/imgstream"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
)

// Notes a dump or restore adds to its stats to say how the images went (Stats.Notes).
const (
	StreamedNote      = "CRIU streamed its images straight into the archive (criu --stream)"
	OverlapNote       = "the pages were compressed while CRIU dumped them"
	PlacedNote        = "the pages went into the archive while CRIU dumped them, after room left for the other images"
	NotStreamedNote   = "CRIU wrote its images into a directory first: "
	UnreservedNote    = "the memory for the images was not faulted in before the freeze, which took longer: "
	RestoreFromNote   = "CRIU read its images straight from the archive (criu --stream)"
	UnpackedFirstNote = "the images were unpacked first: "
)

// ReservePhase is the phase of a dump whose images wait in memory only (a migration's) that faults
// that memory in before CRIU starts: the workload still runs meanwhile.
const ReservePhase = "reserve"

// note adds a line to stats' notes; nil stats record nothing.
func note(stats *daemonv1.Stats, line string) {
	if stats != nil {
		stats.Notes = append(stats.Notes, line)
	}
}

// DumpStream is an archive that a dump handler may fill straight from CRIU's pipes (criu dump
// --stream), offered in State by CompressCheckpoint. The handler calls Capture, then runs CRIU
// with --stream on the same directory; or Decline, and CRIU writes the images into ImageDir,
// archived as it writes them. CompressCheckpoint finishes the archive either way.
type DumpStream struct {
	memLimit int64
	spillDir string
	dest     string // the local archive's path; "" for an upload
	pool     *imgstream.Pool
	workers  int // cores the pages may be compressed on
	progress *Progress
	writer   func() (*archive.Writer, error)
	plain    func(why string) error

	survives bool  // the workload outlives the dump: a failed archive keeps no images
	inMemory bool  // the images wait in memory only, never in a spill file (Unfit sizes it)
	front    int64 // room left at the front of a local archive for the pages to go after (Unfit)
	// Why the memory for an in-memory stream could not be faulted in before the dump ("": it was),
	// and how long faulting it in took, the workload still running (ReservePhase).
	unreserved string
	reserved   time.Duration

	capture  *imgstream.Capture
	archive  *archive.Writer
	declined string
	captured imgstream.Stats // the capture's, once the archive has taken every image
}

// Capture listens in dir for CRIU's images, which wait for the archive in memory up to
// checkpoint.stream_memory_limit, then in a spill file.
func (d *DumpStream) Capture(dir string) (*imgstream.Capture, error) {
	w, err := d.writer()
	if err != nil {
		return nil, err
	}
	if d.front > 0 {
		// Where the archive cannot leave room (a codec without skippable frames), the pages wait.
		_, _ = w.Reserve(d.front)
	}
	c, err := imgstream.StartHeldCapture(dir, d.memLimit, d.spillDir, d.pool, countingSink{imgstream.ArchiveSink{W: w}, d.progress}, d.workers)
	if err != nil {
		return nil, fmt.Errorf("stream the images: %w", err)
	}
	d.capture, d.archive = c, w
	return c, nil
}

// Unfit says why the tree rooted at pid should not be streamed, "" when it may: where the disk
// lacks room for what a stream of the tree's memory (what its images hold at most) may write
// (streamRoom). Streamed, a full disk may stop the archive after CRIU released, and so stopped, the
// workload; through a directory, it stops CRIU, which resumes the workload, or leaves the images in
// their directory. A stream whose images must not touch this machine's disk (a migration's) gets
// room in memory for the whole tree. A local archive of a tree whose memory does not fit in
// memory gets room at its front, so that the pages go into it as they come (imgstream.PlacingSink).
func (d *DumpStream) Unfit(pid int) string {
	need := sysinfo.TreeMemory(pid)
	if d.inMemory {
		d.memLimit = max(d.memLimit, need+need/8+4*imgstream.ChunkSize)
		// The memory is faulted in while the workload still runs, not while CRIU holds it frozen.
		start := time.Now()
		if err := d.pool.Reserve(need); err != nil {
			d.unreserved = err.Error()
		}
		d.reserved = time.Since(start)
		return ""
	}
	memLimit := cmp.Or(d.memLimit, imgstream.DefaultMemoryLimit)
	var dest, spill *fsRoom
	var err error
	if need > memLimit {
		if spill, err = statRoom(d.spillDir); err != nil {
			return err.Error()
		}
	}
	if d.dest != "" {
		if dest, err = statRoom(filepath.Dir(d.dest)); err != nil {
			return err.Error()
		}
		if need > memLimit {
			d.front = frontRoom
		}
	}
	return streamRoom(need, memLimit, dest, spill)
}

// frontRoom is the room a local archive leaves at its front for the images CRIU hands over
// besides the pages, with the files the chain adds: ~5 KiB compressed for a process (memhog, 1
// GiB), its worst case (archive.Writer.FitFront's bound, uncompressed) some 100 KiB; more for a
// container's tree. A hole in the file where they leave some over; where they may not fit, the
// pages placed so far move back, a copy of them.
const frontRoom = 2 << 20

// fsRoom is a directory's file system, as streamRoom weighs it.
type fsRoom struct {
	dir  string
	dev  uint64 // the file system's device: two directories with the same share their room
	free int64  // bytes an unprivileged writer may still take
}

// statRoom reads dir's fsRoom.
func statRoom(dir string) (*fsRoom, error) {
	var st unix.Stat_t
	var fs unix.Statfs_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("the free space of %s is unknown: %w", dir, err)
	}
	if err := unix.Statfs(dir, &fs); err != nil {
		return nil, fmt.Errorf("the free space of %s is unknown: %w", dir, err)
	}
	return &fsRoom{dir: dir, dev: st.Dev, free: int64(fs.Bavail) * fs.Bsize}, nil
}

// streamRoom says why a stream of need bytes of images must not start, "" when it may. What does
// not fit in memLimit waits in the spill file (on spill; nil when nothing spills), whose blocks stay
// until the archive is complete (a failed archive is rescued from them); a local archive (on dest;
// nil for an upload) may take as much as the images, incompressible. Each gets a tenth more for
// what the estimate misses.
func streamRoom(need, memLimit int64, dest, spill *fsRoom) string {
	spilled := max(need-memLimit, 0)
	if spill == nil {
		spilled = 0
	}
	shared := spilled > 0 && dest != nil && dest.dev == spill.dev
	if dest != nil {
		room, what := need, "the workload's memory"
		if shared {
			room += spilled
			what = "the workload's memory and the spill file of its part beyond checkpoint.stream_memory_limit"
		}
		if dest.free < room+room/10 {
			return fmt.Sprintf("%s has %d MiB free, less than %s (%d MiB): a full disk must stop CRIU, which resumes the workload",
				dest.dir, dest.free>>20, what, room>>20)
		}
	}
	if spilled > 0 && !shared && spill.free < spilled+spilled/10 {
		return fmt.Sprintf("%s (checkpoint.temp_dir) has %d MiB free, less than the spill file of the workload's memory beyond checkpoint.stream_memory_limit (%d MiB)",
			spill.dir, spill.free>>20, spilled>>20)
	}
	return ""
}

// Decline says why the handler does not stream: CRIU writes the images into ImageDir instead.
func (d *DumpStream) Decline(why string) error {
	d.declined = why
	return d.plain(why)
}

// Streamed reports whether the images were captured from CRIU's stream.
func (d *DumpStream) Streamed() bool { return d != nil && d.capture != nil }

// Received is the size of the images CRIU streamed (all of them once CRIU has exited).
func (d *DumpStream) Received() int64 {
	if !d.Streamed() {
		return 0
	}
	return d.capture.Received()
}

// finish completes a streamed archive into out: the files CRIU and the chain left in dir
// (checkpoint.json first, then CRIU's log and stats), then CRIU's images in the order a restore
// reads them; and commits it, returning its size. On failure the images are written into dir, so
// that nothing the dump took is lost.
func (d *DumpStream) finish(dir string, out live.Sink) (int64, error) {
	c := d.capture
	defer c.Release()
	<-c.Drained()
	err := d.addFiles(dir)
	if err != nil {
		c.Skip(err) // nothing more goes into an archive that has failed
	} else {
		c.Flush()
		d.captured, err = c.Wait()
	}
	if err == nil {
		err = d.archive.Close()
	}
	var stored int64
	if err == nil {
		stored, err = out.Commit()
	} else if sinkErr := out.Abort(); sinkErr != nil {
		err = sinkErr // the sink failed first (an upload whose server went away): that is the cause
	} else {
		err = fmt.Errorf("archive images: %w", err)
	}
	if err == nil {
		return stored, nil
	}
	if d.survives {
		return 0, err
	}
	return 0, d.rescue(dir, err)
}

// rescue writes the streamed images into dir after the chain failed past the dump (cause).
func (d *DumpStream) rescue(dir string, cause error) error {
	c := d.capture
	<-c.Drained()
	c.Skip(cause)
	if err := c.Rescue(&imgstream.DirSink{Dir: dir}); err != nil {
		return fmt.Errorf("%w; writing the images into %s failed too: %w", cause, dir, err)
	}
	return cause
}

// placedMoved is the number of placed bytes the archive moved back because the images before them
// outgrew the room left for them (frontRoom).
func (d *DumpStream) placedMoved() int64 {
	if p := d.archive.Placement(); p != nil {
		return p.Moved()
	}
	return 0
}

// addFiles adds dir's regular files to the archive, checkpoint.json first and the index right
// after it. An archive with room at its front for the pages to go after (frontRoom) is first made
// to take them and the images CRIU handed over besides the pages (archive.Writer.FitFront).
func (d *DumpStream) addFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("archive the checkpoint's files: %w", err)
	}
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return !e.Type().IsRegular() }) // the streamer's socket
	slices.SortStableFunc(entries, func(a, b os.DirEntry) int {
		switch {
		case a.Name() == checkpoint.MetadataFile:
			return -1
		case b.Name() == checkpoint.MetadataFile:
			return 1
		}
		return 0
	})
	index := imgstream.EncodeIndex(d.capture.Index())
	if d.archive.Placement() != nil {
		sizes := []int64{int64(len(index))}
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				sizes = append(sizes, info.Size())
			}
		}
		if err := d.archive.FitFront(append(sizes, d.capture.FrontSizes()...)); err != nil {
			return err
		}
	}
	for i, e := range entries {
		n, err := d.archive.AddFile(filepath.Join(dir, e.Name()), e.Name())
		if err != nil {
			return err
		}
		d.progress.Add(n)
		if i == 0 && e.Name() == checkpoint.MetadataFile {
			if _, err := d.archive.AddReader(imgstream.IndexName, int64(len(index)), bytes.NewReader(index)); err != nil {
				return err
			}
		}
	}
	return nil
}

// countingSink counts what goes into the archive.
type countingSink struct {
	imgstream.ArchiveSink
	progress *Progress
}

// Put implements imgstream.Sink.
func (c countingSink) Put(name string, n int, last bool, size int64, r io.Reader) error {
	if err := c.ArchiveSink.Put(name, n, last, size, r); err != nil {
		return err
	}
	c.progress.Add(size)
	return nil
}

// PutEncoded implements imgstream.EncodingSink.
func (c countingSink) PutEncoded(name string, n int, last bool, size int64, r io.Reader) error {
	if err := c.ArchiveSink.PutEncoded(name, n, last, size, r); err != nil {
		return err
	}
	c.progress.Add(size)
	return nil
}

// Placed implements imgstream.PlacingSink.
func (c countingSink) Placed(_ string, _ int, _ bool, size int64) { c.progress.Add(size) }

// PutEncoding implements imgstream.DirectEncodingSink.
func (c countingSink) PutEncoding(enc imgstream.ChunkEncoder, name string, n int, last bool, size int64, r io.Reader) error {
	if err := c.ArchiveSink.PutEncoding(enc, name, n, last, size, r); err != nil {
		return err
	}
	c.progress.Add(size)
	return nil
}

// RestoreStream is an archive, local or in S3, that a restore handler may feed straight to CRIU
// (criu restore --stream), offered in State by FetchCheckpoint once it has read the checkpoint's
// metadata from the archive's front into ImageDir. The handler calls Serve, then runs CRIU with
// --stream on ImageDir; a handler that needs the images as files calls Extract, as the chain does
// for runtimes that do not stream (features.RestoreStream).
type RestoreStream struct {
	dir       string
	src       *imgstream.ArchiveSource
	served    bool
	extracted bool
	why       string // why the images were extracted
}

// Serve starts answering CRIU's requests for images from the archive, in dir: ImageDir, or a
// shorter path to it.
func (r *RestoreStream) Serve(dir string) (*imgstream.Server, error) {
	if r.served || r.extracted {
		return nil, errors.New("the archive's images were taken already")
	}
	r.served = true
	s, err := imgstream.StartServe(dir, r.src)
	if err != nil {
		return nil, fmt.Errorf("stream the images: %w", err)
	}
	return s, nil
}

// Extract unpacks the archive's images into ImageDir, for a restore that reads files; why says
// why it does (Stats.Notes).
func (r *RestoreStream) Extract(why string) error {
	if r.extracted {
		return nil
	}
	r.why = why
	if r.served {
		return errors.New("the archive's images were streamed already")
	}
	r.extracted = true
	if err := r.src.WriteAll(r.dir); err != nil {
		return fmt.Errorf("unpack the checkpoint's images: %w", err)
	}
	return nil
}

// Pending reports whether the archive's images are still to be taken (neither served nor
// extracted).
func (r *RestoreStream) Pending() bool { return r != nil && !r.served && !r.extracted }

// returnMemory gives back to the system the heap that a streamed dump or restore used (codec
// buffers, tar and copy buffers), in the background: the daemon then waits for the next request
// holding its live heap and the stream pool, and that request's peak starts from there.
func returnMemory() { go debug.FreeOSMemory() }
