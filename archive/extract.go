package archive

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// Limits of Extract beyond those of CheckEntry.
const (
	// maxTrailingZeros bounds the zero padding accepted after the tar
	// trailer (tar implementations pad to their record size, 10 KiB by
	// default).
	maxTrailingZeros = 16 << 20
	// readBufferSize is the input buffer of Extract; large reads bypass it.
	readBufferSize = 64 << 10
)

// ErrCorrupt is wrapped by the errors Extract returns for truncated or
// corrupt archives.
var ErrCorrupt = errors.New("corrupt or truncated archive")

// Extract unpacks the archive read from r into the existing directory dir,
// which should be empty, and returns the number of content bytes written.
// The format is detected from the content (see [Detect]); workers bounds the
// cores used for decompression (values below 1 mean GOMAXPROCS).
//
// The archive is treated as hostile. Only regular files with plain names are
// extracted: absolute paths, names containing '/' or "..", ".", "", links
// (symbolic and hard), devices, fifos, directories, sparse files, duplicate
// names, more than [MaxEntries] entries and entries larger than [MaxEntrySize]
// are refused with an error wrapping [ErrUnsafeEntry] that names the entry
// ([CheckEntry]); an entry larger than the free space of dir, with one
// wrapping [ErrNoRoom] ([CheckRoom]).
// Files are created through an [os.Root] for dir with O_CREATE|O_EXCL and
// mode 0600, so nothing is ever written outside dir and existing files or
// symlinks in dir are never opened or followed. The compressed stream and
// the tar stream must both end properly (checksums verified, tar trailer
// present, no trailing data); otherwise the error wraps [ErrCorrupt].
//
// On error, the files Extract created are removed; dir itself is kept.
func Extract(r io.Reader, dir string, workers int) (raw int64, err error) {
	workers = normWorkers(workers)

	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, fmt.Errorf("extract archive: open destination: %w", err)
	}
	defer root.Close()

	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < tarBlockSize {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	codec, err := Detect(br)
	if err != nil {
		return 0, fmt.Errorf("extract archive: %w", err)
	}
	dec, err := newDecompressor(br, codec, workers)
	if err != nil {
		return 0, fmt.Errorf("extract %s archive: %w: %w", codec, ErrCorrupt, err)
	}
	defer dec.Close()

	x := &extractor{dir: dir, root: root, names: make(map[string]struct{})}
	defer func() {
		if err != nil {
			x.removeCreated()
		}
	}()
	if err := x.run(dec, br, codec); err != nil {
		return 0, fmt.Errorf("extract %s archive: %w", codec, err)
	}
	return x.raw, nil
}

// extractor holds the state of one Extract call.
type extractor struct {
	dir     string
	root    *os.Root
	names   map[string]struct{}
	created []string
	raw     int64

	// The files being joined from parts (see PartName), with the part each expects next.
	nextPart map[string]int
}

func (x *extractor) run(dec io.Reader, raw *bufio.Reader, codec Codec) error {
	src := &tailReader{r: dec}
	tr := tar.NewReader(src)
	for count := 0; ; count++ {
		start := src.n
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if !src.endedWithTrailer(start) {
				return fmt.Errorf("%w: tar stream ends without its end-of-archive marker", ErrCorrupt)
			}
			break
		}
		if err != nil {
			if hdr != nil { // e.g. tar.ErrInsecurePath
				return fmt.Errorf("%w %q: %w", ErrUnsafeEntry, hdr.Name, err)
			}
			return fmt.Errorf("%w: read tar header: %w", ErrCorrupt, err)
		}
		if err := x.check(hdr, count); err != nil {
			return err
		}
		if err := x.extractFile(tr, hdr); err != nil {
			return err
		}
	}

	// The tar trailer may be followed by zero padding, and then the
	// compressed stream must end: reading to EOF also verifies the codec's
	// checksum, which sits after the data.
	if err := drainZeros(src); err != nil {
		return err
	}
	if codec != Tar {
		if _, err := raw.Peek(1); err == nil {
			return fmt.Errorf("%w: trailing data after the %s stream", ErrCorrupt, codec)
		} else if !errors.Is(err, io.EOF) {
			return fmt.Errorf("read archive: %w", err)
		}
	}
	return nil
}

// check refuses the count-th entry (from 0) unless it is a plain regular file (CheckEntry) with a
// name not seen before.
func (x *extractor) check(hdr *tar.Header, count int) error {
	if err := CheckEntry(hdr, count); err != nil {
		return err
	}
	name := hdr.Name
	if _, dup := x.names[name]; dup {
		return fmt.Errorf("%w %q: duplicate name", ErrUnsafeEntry, name)
	}
	x.names[name] = struct{}{}
	return CheckRoom(x.dir, name, hdr.Size)
}

// openTarget opens the file an entry's body goes to: a new file, or, for part n > 0 of a file
// archived in parts, the file its part 0 created in this extraction. A file's parts come in order;
// other entries may come between them (the archive is written while the files are).
func (x *extractor) openTarget(entry string) (*os.File, error) {
	base, n, isPart := ParsePartName(entry)
	if !isPart {
		return x.create(entry)
	}
	if x.nextPart == nil {
		x.nextPart = map[string]int{}
	}
	if n == 0 {
		if _, dup := x.names[base]; dup {
			return nil, fmt.Errorf("%w %q: duplicate name", ErrUnsafeEntry, base)
		}
		x.names[base] = struct{}{}
		x.nextPart[base] = 1
		return x.create(base)
	}
	if want, started := x.nextPart[base]; !started || n != want {
		return nil, fmt.Errorf("%w %q: part %d of %q out of order", ErrUnsafeEntry, entry, n, base)
	}
	x.nextPart[base]++
	f, err := x.root.OpenFile(base, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("append to %q: %w", base, err)
	}
	return f, nil
}

// create makes a new file; it never follows or replaces an existing one.
func (x *extractor) create(name string) (*os.File, error) {
	f, err := x.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %q: %w", name, err)
	}
	x.created = append(x.created, name)
	return f, nil
}

// extractFile writes the body of the current entry to its file.
func (x *extractor) extractFile(tr *tar.Reader, hdr *tar.Header) (err error) {
	f, err := x.openTarget(hdr.Name)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write %q: %w", hdr.Name, cerr)
		}
	}()

	bufp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bufp)
	// Stream exactly hdr.Size bytes; the anonymous struct hides ReadFrom
	// and WriteTo so that the large buffer is used.
	w := &errWriter{w: f}
	n, err := io.CopyBuffer(w, struct{ io.Reader }{io.LimitReader(tr, hdr.Size)}, *bufp)
	x.raw += n
	switch {
	case w.err != nil:
		return fmt.Errorf("write %q: %w", hdr.Name, w.err)
	case err != nil:
		return fmt.Errorf("%w: entry %q: %w", ErrCorrupt, hdr.Name, err)
	case n != hdr.Size:
		return fmt.Errorf("%w: entry %q: got %d of %d bytes", ErrCorrupt, hdr.Name, n, hdr.Size)
	}
	return nil
}

// errWriter remembers the error of its writer, telling write failures
// apart from read failures in io.Copy.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// removeCreated deletes the files this extraction created.
func (x *extractor) removeCreated() {
	for i := len(x.created) - 1; i >= 0; i-- {
		_ = x.root.Remove(x.created[i])
	}
	x.created = nil
}

// drainZeros reads r to its end, accepting only a bounded amount of zero
// padding.
func drainZeros(r io.Reader) error {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return fmt.Errorf("%w: unexpected data after the end of the tar archive", ErrCorrupt)
			}
		}
		total += int64(n)
		if total > maxTrailingZeros {
			return fmt.Errorf("%w: more than %d bytes of padding after the end of the tar archive", ErrCorrupt, maxTrailingZeros)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
}

// tailReader counts the bytes read through it and remembers the last 1024,
// so that Extract can tell a tar stream that ends with its two zero blocks
// from one that was cut at a block boundary (which archive/tar also reports
// as io.EOF).
type tailReader struct {
	r    io.Reader
	n    int64
	tail [2 * tarBlockSize]byte // ring buffer of the last bytes read
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	b := p[:n]
	if len(b) > len(t.tail) {
		t.n += int64(len(b) - len(t.tail))
		b = b[len(b)-len(t.tail):]
	}
	for len(b) > 0 {
		c := copy(t.tail[t.n%int64(len(t.tail)):], b)
		b = b[c:]
		t.n += int64(c)
	}
	return n, err
}

// endedWithTrailer reports whether the reads since offset start (the call to
// tar.Reader.Next that returned io.EOF) included two zero blocks at the end.
func (t *tailReader) endedWithTrailer(start int64) bool {
	if t.n-start < int64(len(t.tail)) {
		return false
	}
	for _, b := range t.tail {
		if b != 0 {
			return false
		}
	}
	return true
}
