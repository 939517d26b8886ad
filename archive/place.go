package archive

// A restore reads an archive front to back, and CRIU asks for its pages last, so a streamed dump
// writes every other image before the pages. Those images are complete only once CRIU is done,
// while the pages come first and make up most of a checkpoint. An archive written into a file may
// leave room at its front for the other images (Writer.Reserve): the pages are written after that
// room as they come (Placement), the front once it is known, and a skippable frame fills the room
// the front leaves over (a hole in the file, which holds no blocks). The readers of zstd and lz4,
// ours and the codecs' own tools, pass over skippable frames.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// Placer is a destination whose bytes may be written out of order: a local file.
type Placer interface {
	io.Writer
	// Jump continues what Write writes at offset off, once everything written before is in place.
	Jump(off int64) error
	// Region opens the destination for reads and writes at offsets, on a descriptor of its own
	// that outlives the destination's abort, so that what was placed can still be read back.
	Region() (Region, error)
}

// Region is a destination opened for reads and writes at offsets.
type Region interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
}

const (
	// padMagic is the magic number of the skippable frame that fills the room a front leaves over.
	padMagic = skippableMagic + 0xD
	// padHeader is that frame's header: magic and payload size. A front needs room for it.
	padHeader = 4 + 4
	// maxPad is the most room a skippable frame's payload fills.
	maxPad = 1<<32 - 1
	// placeBuffer is how much of the small writes placed wait in memory before they are written.
	placeBuffer = 1 << 20
	// placeDirect is the size from which a write is placed as it is, not copied into that buffer:
	// the blocks of an encoder's frames (64 or 128 KiB), written with what waits before them in
	// one pwritev.
	placeDirect = 32 << 10
)

// ErrFrontFull is the answer of a Writer whose front outgrows the room reserved for it, where it
// would overwrite what was placed after it.
var ErrFrontFull = errors.New("the entries before the placed ones outgrew the room reserved for them")

// placeable reports whether an archive of c may have entries placed ahead of its front: the
// codec has skippable frames to fill the room left over.
func (c Codec) placeable() bool { return c == Zstd || c == LZ4 }

// Placement is the part of an archive written ahead of its front (Writer.Reserve): whole frames
// holding whole tar entries (an EntryEncoder's), written one after the other from the end of the
// room reserved for the front. It is not safe for concurrent use, nor for use concurrently with
// the Writer's FitFront and EndFront.
type Placement struct {
	r      Region
	fd     int   // r's descriptor, for pwritev; -1: none (WriteAt)
	front  int64 // where the placed bytes begin: the room reserved for the front
	pend   []byte
	n      int64 // bytes placed, the pending ones included
	most   int64 // the most bytes ever placed: what lies beyond n is left over from a Rewind
	synced int64 // bytes whose write-back to the disk was started (writeback)
	moved  int64 // bytes FitFront moved back
}

// Reserve leaves front bytes of room at the beginning of the archive for the entries added
// through the Writer, and returns the Placement where entries may be written after that room
// meanwhile, in the order the archive lists them. Nothing may have been written yet, the codec
// must be zstd or lz4 and the destination a Placer. EndFront (or Close) ends the front: what the
// Writer adds after it follows what was placed.
func (a *Writer) Reserve(front int64) (*Placement, error) {
	switch {
	case a.place != nil:
		return nil, errors.New("reserve room in an archive: reserved already")
	case !a.codec.placeable():
		return nil, fmt.Errorf("reserve room in a %s archive: the codec has no skippable frames", a.codec)
	case a.dst.n > 0 || len(a.names) > 0:
		return nil, errors.New("reserve room in an archive: written to already")
	case front < padHeader || front-padHeader > maxPad:
		return nil, fmt.Errorf("reserve room in an archive: %d bytes is out of range", front)
	}
	p, ok := a.dst.w.(Placer)
	if !ok {
		return nil, errors.New("reserve room in an archive: its destination is written in order only")
	}
	r, err := p.Region()
	if err != nil {
		return nil, fmt.Errorf("reserve room in an archive: %w", err)
	}
	pl := &Placement{r: r, fd: -1, front: front, pend: make([]byte, 0, placeBuffer)}
	if f, ok := r.(interface{ Fd() uintptr }); ok {
		pl.fd = int(f.Fd())
	}
	a.place = pl
	a.dst.limit = front - padHeader
	return pl, nil
}

// Placement returns the archive's Placement (Reserve), nil if it has none.
func (a *Writer) Placement() *Placement { return a.place }

// Write places b after what was placed before.
func (p *Placement) Write(b []byte) (int, error) {
	if len(b) < placeDirect {
		if len(p.pend)+len(b) > cap(p.pend) {
			if err := p.Flush(); err != nil {
				return 0, err
			}
		}
		p.pend = append(p.pend, b...)
	} else {
		if err := p.writeAt(p.front+p.n-int64(len(p.pend)), p.pend, b); err != nil {
			return 0, fmt.Errorf("write into the archive: %w", err)
		}
		p.pend = p.pend[:0]
	}
	p.n += int64(len(b))
	p.most = max(p.most, p.n)
	return len(b), nil
}

// writeAt writes a, then b, at offset at.
func (p *Placement) writeAt(at int64, a, b []byte) error {
	if p.fd < 0 {
		if _, err := p.r.WriteAt(a, at); err != nil {
			return err
		}
		_, err := p.r.WriteAt(b, at+int64(len(a)))
		return err
	}
	for len(a)+len(b) > 0 {
		k, err := unix.Pwritev(p.fd, [][]byte{a, b}, at)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if k == 0 {
			return io.ErrShortWrite
		}
		at += int64(k)
		skip := min(k, len(a))
		a, b = a[skip:], b[k-skip:]
	}
	return nil
}

// Offset is the number of bytes placed so far.
func (p *Placement) Offset() int64 { return p.n }

// Rewind drops what was placed after the first to bytes: the frames of an entry whose encoding
// failed. What the next writes do not cover is cut off when the archive ends.
func (p *Placement) Rewind(to int64) error {
	if to < 0 || to > p.n {
		return fmt.Errorf("rewind a placement of %d bytes to %d", p.n, to)
	}
	p.synced = min(p.synced, to)
	if base := p.n - int64(len(p.pend)); to >= base {
		p.pend = p.pend[:to-base]
	} else {
		p.pend = p.pend[:0]
	}
	p.n = to
	return nil
}

// Flush writes what waits in memory, and starts writing what was placed since the last Flush to
// the disk (sync_file_range), so that the fsync that completes the archive has less left to wait
// for: while CRIU still dumps, for what is placed then.
func (p *Placement) Flush() error {
	if len(p.pend) > 0 {
		if err := p.writeAt(p.front+p.n-int64(len(p.pend)), p.pend, nil); err != nil {
			return fmt.Errorf("write into the archive: %w", err)
		}
		p.pend = p.pend[:0]
	}
	if p.fd >= 0 && p.n > p.synced {
		// Best effort: a file system without it writes back later, at the fsync at the latest.
		_ = unix.SyncFileRange(p.fd, p.front+p.synced, p.n-p.synced, unix.SYNC_FILE_RANGE_WRITE)
		p.synced = p.n
	}
	return nil
}

// Section reads back the n bytes placed at offset off (Offset before they were written), once
// flushed.
func (p *Placement) Section(off, n int64) io.Reader {
	return io.NewSectionReader(p.r, p.front+off, n)
}

// Moved is the number of placed bytes FitFront moved back to make room for the front: a copy of
// them, which a larger room would have spared.
func (p *Placement) Moved() int64 { return p.moved }

// Close closes the Placement's descriptor: what was placed can no longer be read back.
func (p *Placement) Close() error { return p.r.Close() }

// FitFront makes sure the room reserved for the front takes entries of the given sizes, added
// through the Writer after what it holds already, compressed however badly: where it may not, it
// moves what was placed further back. EndFront checks that the front fits all the same.
func (a *Writer) FitFront(sizes []int64) error {
	p := a.place
	if p == nil || a.dst.limit < 0 {
		return nil
	}
	need := a.dst.n + frontBound(sizes) + padHeader
	if need <= p.front {
		return nil
	}
	if err := p.Flush(); err != nil {
		return err
	}
	to := (need + placeAlign - 1) / placeAlign * placeAlign
	if to-padHeader > maxPad {
		return fmt.Errorf("move the placed entries to %d: %w", to, ErrFrontFull)
	}
	if err := moveUp(p.r, p.front, p.front+p.most, to); err != nil {
		return fmt.Errorf("move the placed entries to make room for the front: %w", err)
	}
	p.front, p.synced, p.moved = to, 0, p.moved+p.most
	a.dst.limit = to - padHeader
	return nil
}

// placeAlign is what FitFront rounds the room it makes up to: whole pages of the file.
const placeAlign = 64 << 10

// frontBound is the most bytes entries of the given sizes take in an archive: a tar header (and
// one more for a long name) and the content padded to whole blocks each, and what the codecs add
// to content that does not compress (zstd: 3 bytes a 128 KiB block; lz4: 4 bytes a 64 KiB block;
// frame headers and checksums), generously.
func frontBound(sizes []int64) int64 {
	var tarBytes int64
	for _, s := range sizes {
		tarBytes += 2*tarBlockSize + (s+tarBlockSize-1)/tarBlockSize*tarBlockSize
	}
	return tarBytes + tarBytes/256 + 64<<10
}

// moveUp moves the bytes [from, end) of r to begin at to (> from), the last ones first, so that
// none is overwritten before it is read.
func moveUp(r Region, from, end, to int64) error {
	buf := make([]byte, placeBuffer)
	for end > from {
		k := min(int64(len(buf)), end-from)
		end -= k
		if _, err := r.ReadAt(buf[:k], end); err != nil {
			return err
		}
		if _, err := r.WriteAt(buf[:k], end+to-from); err != nil {
			return err
		}
	}
	return nil
}

// EndFront ends the front of an archive with a Placement: it ends the open frame, fills the room
// left over with a skippable frame and continues after what was placed. Without anything placed,
// the archive just goes on. Close calls it.
func (a *Writer) EndFront() error {
	p := a.place
	if p == nil || a.dst.limit < 0 {
		return nil
	}
	if err := a.ready("frames"); err != nil {
		return fmt.Errorf("end the archive's front: %w", err)
	}
	if err := a.endFrame(); err != nil {
		return fmt.Errorf("end the archive's front: %w", err)
	}
	a.dst.limit = -1
	if p.n == 0 && p.most == 0 {
		return nil
	}
	if err := p.Flush(); err != nil {
		a.err = err
		return fmt.Errorf("end the archive's front: %w", err)
	}
	pad := p.front - a.dst.n
	if pad < padHeader {
		a.err = ErrFrontFull
		return fmt.Errorf("end the archive's front: %w", ErrFrontFull)
	}
	var head [padHeader]byte
	binary.LittleEndian.PutUint32(head[:], padMagic)
	binary.LittleEndian.PutUint32(head[4:], uint32(pad-padHeader))
	if _, err := a.dst.Write(head[:]); err != nil {
		a.err = err
		return fmt.Errorf("end the archive's front: %w", err)
	}
	if err := a.dst.w.(Placer).Jump(p.front + p.n); err != nil {
		a.err = err
		return fmt.Errorf("end the archive's front: %w", err)
	}
	a.dst.n = p.front + p.n
	return nil
}

// countingWriter is a Writer's destination: it counts what is written into it and, while the
// front of an archive with a Placement is being written, refuses to write beyond limit (>= 0).
type countingWriter struct {
	w     io.Writer
	n     int64
	limit int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.limit >= 0 && c.n+int64(len(p)) > c.limit {
		return 0, ErrFrontFull
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
