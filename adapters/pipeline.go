package adapters

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/storage"
)

// partSize is how much of a growing pages image is archived at a time.
const partSize = 32 << 20

// archiver archives a checkpoint's images while CRIU writes them: each image as soon as CRIU has
// closed it, and the pages images (which grow for most of the dump) part by part as they grow.
// Whatever is left when CRIU is done (the metadata, the log, the tail of the pages) follows in
// finish. Compression thus overlaps the dump instead of following it.
type archiver struct {
	progress *Progress // counts the image bytes archived
	dir      string
	w        *archive.Writer
	out      sink
	stop     chan struct{}
	done     chan error

	// Used by run, then (once run has returned) by finish.
	closed   map[string]bool   // images CRIU has closed
	added    map[string]int64  // whole images archived, with their size then
	followed map[string]*grown // pages images archived in parts
	notify   int               // inotify descriptor, -1 without
}

// grown is how far a growing image has been archived.
type grown struct {
	offset int64
	parts  int
	done   bool
}

// startArchiver starts archiving dir into out while CRIU writes it.
func startArchiver(dir string, out sink, codec archive.Codec, workers int, progress *Progress) (*archiver, error) {
	w, err := archive.NewWriter(out, codec, workers)
	if err != nil {
		return nil, err
	}
	a := &archiver{
		progress: progress, dir: dir, w: w, out: out, stop: make(chan struct{}), done: make(chan error, 1),
		closed: map[string]bool{}, added: map[string]int64{}, followed: map[string]*grown{}, notify: -1,
	}
	if fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC); err == nil {
		if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE); err == nil {
			a.notify = fd
		} else {
			unix.Close(fd)
		}
	}
	go func() { a.done <- a.run() }()
	return a, nil
}

// run archives what is ready every few milliseconds until stopped.
func (a *archiver) run() error {
	if a.notify < 0 {
		<-a.stop // without close events, everything waits for finish
		return nil
	}
	defer unix.Close(a.notify)
	for {
		a.readEvents()
		if err := a.archiveReady(false); err != nil {
			return err
		}
		select {
		case <-a.stop:
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readEvents records the images CRIU closed since the last call.
func (a *archiver) readEvents() {
	var buf [8192]byte
	for {
		n, err := unix.Read(a.notify, buf[:])
		if n <= 0 || err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			name := strings.TrimRight(string(nameBytes), "\x00")
			a.closed[name] = true
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// isPages tells the images CRIU writes memory into, which grow for most of the dump.
func isPages(name string) bool {
	return strings.HasPrefix(name, "pages-") && strings.HasSuffix(name, ".img")
}

// earlyOK tells the images that are final once closed. inventory.img is left to the end, as are
// the log, CRIU's stats and cedana's metadata.
func earlyOK(name string) bool {
	return strings.HasSuffix(name, ".img") && name != "inventory.img" && !strings.HasPrefix(name, ".")
}

// archiveReady archives what is final now; with all set (CRIU is done), everything left.
func (a *archiver) archiveReady(all bool) error {
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(a.dir, name)
		if isPages(name) {
			if err := a.followPages(path, name, all || a.closed[name]); err != nil {
				return err
			}
			continue
		}
		if _, done := a.added[name]; done || !(all || (a.closed[name] && earlyOK(name))) {
			continue
		}
		n, err := a.w.AddFile(path, name)
		if err != nil {
			return err
		}
		a.added[name] = n
		a.progress.Add(n)
	}
	return nil
}

// followPages archives the part of a pages image that is final: whole parts while it grows, the
// rest once it is closed.
func (a *archiver) followPages(path, name string, closed bool) error {
	g := a.followed[name]
	if g == nil {
		g = &grown{}
		a.followed[name] = g
	}
	if g.done {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	for info.Size()-g.offset >= partSize {
		if _, err := a.w.AddFilePart(path, name, g.parts, g.offset, partSize); err != nil {
			return err
		}
		a.progress.Add(partSize)
		g.offset += partSize
		g.parts++
	}
	if closed {
		if rest := info.Size() - g.offset; rest > 0 || g.parts == 0 {
			if _, err := a.w.AddFilePart(path, name, g.parts, g.offset, rest); err != nil {
				return err
			}
			a.progress.Add(rest)
			g.offset += rest
			g.parts++
		}
		g.done = true
	}
	return nil
}

// finish archives what is left once CRIU is done and the metadata is written, checks that nothing
// archived early changed afterwards, and completes the archive. It returns the bytes stored.
func (a *archiver) finish() (int64, error) {
	close(a.stop)
	if err := <-a.done; err != nil {
		return 0, a.fail(err)
	}
	err := a.archiveReady(true)
	for name, size := range a.added {
		if info, statErr := os.Stat(filepath.Join(a.dir, name)); statErr != nil || info.Size() != size {
			err = errors.Join(err, fmt.Errorf("image %s changed after it was archived", name))
		}
	}
	if err == nil {
		err = a.w.Close()
	}
	if err != nil {
		return 0, a.fail(err)
	}
	return a.out.commit()
}

// fail discards the partial archive after err. When the sink failed first (an upload whose
// server went away), its error is the cause and is returned instead: archiving failed only
// because the sink stopped taking data.
func (a *archiver) fail(err error) error {
	if sinkErr := a.out.abort(); sinkErr != nil {
		return sinkErr
	}
	return fmt.Errorf("archive images: %w", err)
}

// abort stops archiving and discards the partial archive.
func (a *archiver) abort() {
	close(a.stop)
	<-a.done
	a.out.abort()
}

// sink is where an archive goes: a local file or an S3 upload.
type sink interface {
	io.Writer
	// commit completes the archive and returns its size.
	commit() (int64, error)
	// abort discards what was written. It returns the sink's own failure, if it had one
	// before (an upload that failed), and nil otherwise.
	abort() error
}

// PartialArchive is where the archive of a local checkpoint at path is written until it is
// complete, and renamed to path.
func PartialArchive(path string) string { return path + ".partial" }

// fileSink writes PartialArchive(path) and renames it to path on commit.
type fileSink struct {
	*bufio.Writer
	f          *os.File
	path, temp string
}

func newFileSink(path string) (*fileSink, error) {
	temp := PartialArchive(path)
	f, err := os.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	return &fileSink{Writer: bufio.NewWriterSize(f, 1<<20), f: f, path: path, temp: temp}, nil
}

func (s *fileSink) commit() (int64, error) {
	err := s.Flush()
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.temp, s.path)
	}
	if err != nil {
		os.Remove(s.temp)
		if errors.Is(err, unix.ENOSPC) {
			return 0, fmt.Errorf("write archive %s: the disk is full: %w", s.path, err)
		}
		return 0, fmt.Errorf("write archive %s: %w", s.path, err)
	}
	info, err := os.Stat(s.path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

func (s *fileSink) abort() error {
	s.f.Close()
	os.Remove(s.temp)
	return nil
}

// uploadSink streams the archive to S3 as it is written: nothing is staged locally.
type uploadSink struct {
	*bufio.Writer
	pw     *io.PipeWriter
	loc    storage.Location
	result chan uploadResult
}

type uploadResult struct {
	n   int64
	err error
}

func newUploadSink(ctx context.Context, opts Opts, loc storage.Location) (*uploadSink, error) {
	client, err := storage.New(opts.S3)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	s := &uploadSink{Writer: bufio.NewWriterSize(pw, 1<<20), pw: pw, loc: loc, result: make(chan uploadResult, 1)}
	go func() {
		n, err := client.Upload(ctx, loc, pr)
		pr.CloseWithError(err) // unblocks the writer if the upload failed first
		s.result <- uploadResult{n, err}
	}()
	return s, nil
}

func (s *uploadSink) commit() (int64, error) {
	err := s.Flush()
	s.pw.CloseWithError(err)
	res := <-s.result
	if err == nil {
		err = res.err
	}
	if err != nil {
		return 0, uploadFailed(err)
	}
	return res.n, nil
}

func (s *uploadSink) abort() error {
	s.pw.CloseWithError(errAborted)
	if res := <-s.result; res.err != nil && !errors.Is(res.err, errAborted) {
		return uploadFailed(res.err)
	}
	return nil
}

// errAborted ends the source of an upload that is abandoned.
var errAborted = errors.New("dump failed")

// uploadFailed says that the upload failed; storage's errors name the endpoint and object.
func uploadFailed(err error) error {
	return fmt.Errorf("the upload failed: %w", err)
}
