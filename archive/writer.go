package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Writer streams a flat tar archive of files through a codec.
//
// Compression uses fast settings and runs on up to workers cores where the
// codec allows it:
//   - zstd: SpeedFastest on one core whatever workers says: more concurrency
//     only overlaps encoding with writing on a stream, and both that and the
//     library's parallel WithConcurrentBlocks mode measured slower on 2 cores
//     (see BenchmarkWrite);
//   - lz4: the default fast level in 64 KiB blocks, with lz4.ConcurrencyOption(workers);
//   - gzip: BestSpeed; with workers > 1 the stream is cut into 1 MiB blocks
//     compressed in parallel by github.com/klauspost/pgzip (a standard,
//     single-member gzip stream), with workers == 1 a plain gzip stream;
//   - zlib: BestSpeed, always a single sequential stream (one core), since
//     no parallel zlib encoder is used;
//   - tar: no compression.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	codec  Codec
	comp   compressor
	dst    *countingWriter // where comp writes; AppendFrames writes here too
	place  *Placement      // written ahead of the front (Reserve); nil: none
	open   bool            // comp has begun a frame that Close or AppendFrames must end
	tw     *tar.Writer
	raw    int64
	names  map[string]struct{}
	closed bool
	err    error // sticky error: the archive is unusable after a failure
}

// NewWriter returns a Writer that writes an archive compressed with c into w.
// workers is the number of cores compression may use; values below 1 mean
// all of them (GOMAXPROCS). [None] is refused: it produces no archive.
// The caller must call Close to complete the archive.
func NewWriter(w io.Writer, c Codec, workers int) (*Writer, error) {
	if w == nil {
		return nil, errors.New("new archive writer: nil destination")
	}
	dst := &countingWriter{w: w, limit: -1}
	comp, err := newCompressor(dst, c, normWorkers(workers))
	if err != nil {
		return nil, fmt.Errorf("new %s archive writer: %w", c, err)
	}
	a := newWriterWith(comp, c)
	a.dst = dst
	return a, nil
}

// newWriterWith returns a Writer over an already configured compressor.
func newWriterWith(comp compressor, c Codec) *Writer {
	a := &Writer{codec: c, comp: comp, open: true, names: make(map[string]struct{})}
	a.tw = tar.NewWriter(frameWriter{a})
	return a
}

// AddFile adds the regular file at path to the archive under name, which must
// be a plain base name (no '/', not "." or ".."), unique within the archive.
// The content is streamed, never held in memory as a whole. It returns the
// number of content bytes added. After an error other than a refused name or
// file the archive is unusable.
func (a *Writer) AddFile(path, name string) (int64, error) {
	if err := a.ready(name); err != nil {
		return 0, fmt.Errorf("add file %q to archive: %w", name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("add file %q to archive: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("add file %q to archive: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("add file %q to archive: %s is not a regular file (%s)", name, path, fi.Mode().Type())
	}

	size := fi.Size()
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     int64(fi.Mode().Perm()),
		ModTime:  fi.ModTime().Truncate(time.Second),
	}
	// LimitReader guards against a file that grows meanwhile.
	n, err := a.write(hdr, io.LimitReader(f, size), "file shrank while being archived")
	if err != nil {
		return n, fmt.Errorf("add file %q to archive: %w", name, err)
	}
	return n, nil
}

// ready refuses to add an entry to a closed or failed archive, or under a name that is invalid
// or already in it.
func (a *Writer) ready(entry string) error {
	if a.closed {
		return errors.New("writer is closed")
	}
	if a.err != nil {
		return fmt.Errorf("earlier failure: %w", a.err)
	}
	if reason := checkName(entry); reason != "" {
		return fmt.Errorf("invalid name: %s", reason)
	}
	if _, dup := a.names[entry]; dup {
		return errors.New("duplicate name")
	}
	return nil
}

// write adds hdr and hdr.Size bytes of r to the archive; short says what it means that r ends
// sooner. A failure makes the archive unusable.
func (a *Writer) write(hdr *tar.Header, r io.Reader, short string) (int64, error) {
	if err := a.tw.WriteHeader(hdr); err != nil {
		a.err = err
		return 0, fmt.Errorf("write header: %w", err)
	}
	a.names[hdr.Name] = struct{}{}
	bufp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bufp)
	// The anonymous structs hide ReadFrom/WriteTo so that the large buffer is used.
	n, err := io.CopyBuffer(struct{ io.Writer }{a.tw}, struct{ io.Reader }{r}, *bufp)
	a.raw += n
	if err == nil && n < hdr.Size {
		err = fmt.Errorf("%s (%d of %d bytes): %w", short, n, hdr.Size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		a.err = err
	}
	return n, err
}

// Close writes the tar trailer and flushes the codec. It does not close the
// underlying writer. Closing twice is a no-op.
func (a *Writer) Close() error {
	if a.closed {
		return nil
	}
	if err := a.EndFront(); err != nil {
		a.closed = true
		return fmt.Errorf("finish %s archive: %w", a.codec, err)
	}
	a.closed = true
	errTar := a.tw.Close()
	var errComp error
	if a.open {
		errComp = a.comp.Close()
	}
	if err := errors.Join(errTar, errComp); err != nil {
		return fmt.Errorf("finish %s archive: %w", a.codec, err)
	}
	if a.err != nil {
		return fmt.Errorf("finish %s archive: earlier failure: %w", a.codec, a.err)
	}
	return nil
}

// RawBytes returns the number of uncompressed content bytes added so far
// (file contents only, without tar headers).
func (a *Writer) RawBytes() int64 { return a.raw }

// WriteDir archives every file of the flat directory dir into w with codec c,
// in name order, and returns the number of content bytes written. Entries
// other than regular files (subdirectories, symlinks, devices...) make it
// fail before anything is written. w is not closed.
func WriteDir(dir string, w io.Writer, c Codec, workers int) (raw int64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("archive directory: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return 0, fmt.Errorf("archive directory %s: %q is not a regular file (%s)", dir, e.Name(), e.Type())
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)

	a, err := NewWriter(w, c, workers)
	if err != nil {
		return 0, fmt.Errorf("archive directory %s: %w", dir, err)
	}
	for _, name := range names {
		if _, err := a.AddFile(filepath.Join(dir, name), name); err != nil {
			_ = a.Close()
			return a.RawBytes(), fmt.Errorf("archive directory %s: %w", dir, err)
		}
	}
	if err := a.Close(); err != nil {
		return a.RawBytes(), fmt.Errorf("archive directory %s: %w", dir, err)
	}
	return a.RawBytes(), nil
}
