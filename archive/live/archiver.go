// Package live archives a checkpoint's images while CRIU writes them, into a sink: a local
// archive file or a streamed S3 upload. Compression thus overlaps the dump instead of following
// it, and what is left when CRIU is done is little.
package live

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
)

// partSize is how much of a growing pages image is archived at a time.
const partSize = 32 << 20

// Counter counts the image bytes archived (a request's progress); a nil *adapters.Progress will do.
type Counter interface{ Add(n int64) }

// Archiver archives a checkpoint's images while CRIU writes them: each image as soon as CRIU has
// closed it, and the pages images (which grow for most of the dump) part by part as they grow.
// Whatever is left when CRIU is done (the metadata, the log, the tail of the pages) follows in
// Finish. Compression thus overlaps the dump instead of following it.
type Archiver struct {
	progress Counter // counts the image bytes archived
	dir      string
	w        *archive.Writer
	out      Sink
	stop     chan struct{}
	done     chan error

	// Used by run, then (once run has returned) by Finish.
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

// Start starts archiving dir into out while CRIU writes it, compressing with codec on up to
// workers cores. Finish or Abort must follow.
func Start(dir string, out Sink, codec archive.Codec, workers int, progress Counter) (*Archiver, error) {
	w, err := archive.NewWriter(out, codec, workers)
	if err != nil {
		return nil, err
	}
	a := &Archiver{
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
func (a *Archiver) run() error {
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
func (a *Archiver) readEvents() {
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
func (a *Archiver) archiveReady(all bool) error {
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
func (a *Archiver) followPages(path, name string, closed bool) error {
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

// Finish archives what is left once CRIU is done and the metadata is written, checks that nothing
// archived early changed afterwards, and completes the archive. It returns the bytes stored.
func (a *Archiver) Finish() (int64, error) {
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
	return a.out.Commit()
}

// fail discards the partial archive after err. When the sink failed first (an upload whose
// server went away), its error is the cause and is returned instead: archiving failed only
// because the sink stopped taking data.
func (a *Archiver) fail(err error) error {
	if sinkErr := a.out.Abort(); sinkErr != nil {
		return sinkErr
	}
	return fmt.Errorf("archive images: %w", err)
}

// Abort stops archiving and discards the partial archive.
func (a *Archiver) Abort() {
	close(a.stop)
	<-a.done          //nolint:errcheck // archiving was abandoned: its outcome no longer matters
	_ = a.out.Abort() // whatever the sink had to say, the archive is abandoned
}
