package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// An archive of a codec whose frames may follow one another (zstd frames, lz4 frames, gzip
// members: their readers read on into the next) can be written in segments: entries compressed
// ahead of time, each into whole frames of its own (EntryEncoder), are appended between the
// entries a Writer compresses itself (AppendFrames). The result reads as one tar stream through
// one decompressor, as any other archive of the codec.

// Concatenable reports whether archives of c may be written in segments (see AppendFrames).
func (c Codec) Concatenable() bool { return c == Zstd || c == LZ4 || c == Gzip }

// ErrNotConcatenable is EntryEncoder's and AppendFrames' answer for a codec whose frames may not
// follow one another (zlib), or that has none (tar).
var ErrNotConcatenable = errors.New("the codec's frames cannot be concatenated")

// frameCompressor is a compressor that begins a new frame into w after Close.
type frameCompressor interface {
	compressor
	Reset(w io.Writer)
}

// frameWriter is what a Writer's tar stream writes into: the current frame, begun on demand.
type frameWriter struct{ a *Writer }

func (f frameWriter) Write(p []byte) (int, error) {
	if !f.a.open {
		fc, ok := f.a.comp.(frameCompressor)
		if !ok {
			return 0, ErrNotConcatenable
		}
		fc.Reset(f.a.dst)
		f.a.open = true
	}
	return f.a.comp.Write(p)
}

// AppendFrames ends the frame the Writer has open (after the current entry's padding) and copies
// r, whole frames of the Writer's codec holding whole tar entries (EntryEncoder's), to the
// destination as they are. The next entry, or Close's trailer, begins a new frame. Names in r are
// not checked against the Writer's. It returns the number of bytes copied.
func (a *Writer) AppendFrames(r io.Reader) (int64, error) {
	var n int64
	err := a.AppendEncoded(func(dst io.Writer) error {
		// Through the destination's Write alone: its ReadFrom (bufio.Writer's hands over to
		// os.File's) would make a 32 KiB buffer for each of r's pieces, and a dump's encoded
		// chunks come in many.
		var err error
		n, err = io.Copy(struct{ io.Writer }{dst}, r)
		return err
	})
	return n, err
}

// AppendEncoded ends the frame the Writer has open, as AppendFrames does, and has encode write
// whole frames (an EntryEncoder's) straight to the destination.
func (a *Writer) AppendEncoded(encode func(dst io.Writer) error) error {
	if err := a.ready("frames"); err != nil {
		return fmt.Errorf("append to archive: %w", err)
	}
	if !a.codec.Concatenable() || a.dst == nil {
		return fmt.Errorf("append to %s archive: %w", a.codec, ErrNotConcatenable)
	}
	if err := a.endFrame(); err != nil {
		return fmt.Errorf("append to archive: %w", err)
	}
	if err := encode(a.dst); err != nil {
		a.err = err
		return fmt.Errorf("append to archive: %w", err)
	}
	return nil
}

// endFrame ends the frame the Writer has open, after the current entry's padding.
func (a *Writer) endFrame() error {
	if !a.open {
		return nil
	}
	if err := a.tw.Flush(); err != nil {
		a.err = err
		return err
	}
	a.open = false
	if err := a.comp.Close(); err != nil {
		a.err = err
		return err
	}
	return nil
}

// EntryEncoder compresses tar entries one at a time, each into a frame of its own that
// AppendFrames may append to an archive of the same codec. It compresses on the calling goroutine
// only, at the codec's fast level; one EntryEncoder per worker, reused: it is not safe for
// concurrent use.
type EntryEncoder struct {
	codec Codec
	comp  frameCompressor
	zstd  *zstd.Encoder
	// zstd and lz4: a chunk whose first storedProbe bytes do not compress is written as it is, in
	// raw (zstd) or uncompressed (lz4) blocks.
	stored         storedZstd
	storedLZ4      storedLZ4
	lz4Probe       lz4.Compressor
	probe, scratch []byte
	// lz4 only: the XXH64 of a frame's content, for the checksum frame after it (sumframe.go).
	sum *xxhash.Digest
}

// entryWindow is the zstd window of an EntryEncoder: small, as its frames are (an image chunk),
// for the memory a worker holds and for the decoder's.
const entryWindow = 1 << 20

// NewEntryEncoder returns an encoder for c, or an error wrapping ErrNotConcatenable.
func NewEntryEncoder(c Codec) (*EntryEncoder, error) {
	e := &EntryEncoder{codec: c}
	switch c {
	case Zstd:
		zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(entryWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("new zstd entry encoder: %w", err)
		}
		e.comp, e.zstd = zw, zw
	case LZ4:
		zw := lz4.NewWriter(nil)
		if err := zw.Apply(lz4.ConcurrencyOption(1), lz4.CompressionLevelOption(lz4.Fast), lz4.BlockSizeOption(lz4Block),
			lz4.ChecksumOption(false)); err != nil {
			return nil, fmt.Errorf("new lz4 entry encoder: %w", err)
		}
		e.comp, e.sum = zw, xxhash.New()
	case Gzip:
		zw, err := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		if err != nil {
			return nil, fmt.Errorf("new gzip entry encoder: %w", err)
		}
		e.comp = zw
	default:
		return nil, fmt.Errorf("encode %s entries: %w", c, ErrNotConcatenable)
	}
	return e, nil
}

// Encode writes into w the frame of the entry name holding the next size bytes of r (header,
// content and padding, no trailer), and returns the number of content bytes.
func (e *EntryEncoder) Encode(w io.Writer, name string, size int64, r io.Reader) (int64, error) {
	if reason := checkName(name); reason != "" {
		return 0, fmt.Errorf("encode %q: invalid name: %s", name, reason)
	}
	// The frame's size lets a decoder size its buffers to it, and decode it whole (frameReader).
	content := tarBlockSize + (size+tarBlockSize-1)/tarBlockSize*tarBlockSize
	var frame io.Writer = e.comp
	closeFrame := e.comp.Close
	stored := false
	if e.OutpacesWriter() {
		stored, r = e.probeStored(r, size)
	}
	switch {
	case stored && e.zstd != nil:
		if err := e.stored.reset(w, content); err != nil {
			return 0, fmt.Errorf("encode %q: %w", name, err)
		}
		frame, closeFrame = &e.stored, e.stored.close
	case stored:
		if err := e.storedLZ4.reset(w); err != nil {
			return 0, fmt.Errorf("encode %q: %w", name, err)
		}
		frame, closeFrame = &e.storedLZ4, e.storedLZ4.close
	case e.zstd != nil:
		e.zstd.ResetContentSize(w, content)
	default:
		e.comp.Reset(w)
		if zw, ok := e.comp.(*lz4.Writer); ok {
			if err := zw.Apply(lz4.SizeOption(uint64(content))); err != nil {
				return 0, fmt.Errorf("encode %q: %w", name, err)
			}
		}
	}
	if e.sum != nil {
		e.sum.Reset()
		frame = io.MultiWriter(frame, e.sum)
	}
	tw := tar.NewWriter(frame)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: time.Now().Truncate(time.Second)}
	if err := tw.WriteHeader(hdr); err != nil {
		return 0, fmt.Errorf("encode %q: %w", name, err)
	}
	n, err := copyInto(tw, r, size)
	if err == nil && n < size {
		err = fmt.Errorf("stream shorter than announced (%d of %d bytes): %w", n, size, io.ErrUnexpectedEOF)
	}
	if err == nil {
		err = tw.Flush() // the padding; no trailer
	}
	if cerr := closeFrame(); err == nil {
		err = cerr
	}
	if err == nil && e.sum != nil {
		e.scratch = appendSumFrame(e.scratch[:0], e.sum.Sum64())
		_, err = w.Write(e.scratch)
	}
	if err != nil {
		return n, fmt.Errorf("encode %q: %w", name, err)
	}
	return n, nil
}

// OutpacesWriter says whether the encoder passes memory that does not compress faster than a
// Writer of its codec: zstd and lz4 write it as it is, in raw or uncompressed blocks, and checksum
// it with XXH64 (lz4's own checksum, XXH32, runs at half its speed here), which is about twice as
// fast as the codecs' fastest levels pass it through; gzip's is the Writer's encoder.
func (e *EntryEncoder) OutpacesWriter() bool { return e.zstd != nil || e.sum != nil }

// probeStored reads the first storedProbe bytes of the size that r holds and says whether they
// compressed by less than 1/32 (memory that does not compress); it returns a reader of all
// size bytes again.
func (e *EntryEncoder) probeStored(r io.Reader, size int64) (bool, io.Reader) {
	if size < storedProbe {
		return false, r
	}
	if e.probe == nil {
		e.probe = make([]byte, storedProbe)
	}
	n, err := io.ReadFull(r, e.probe)
	rest := io.MultiReader(bytes.NewReader(e.probe[:n]), r)
	if err != nil {
		return false, rest // the copy reports the short source
	}
	return e.compressed(e.probe) >= n-n/32, rest
}

// compressed returns the size p compresses to: as one zstd frame, or in lz4's blocks.
func (e *EntryEncoder) compressed(p []byte) int {
	if e.zstd != nil {
		e.scratch = e.zstd.EncodeAll(p, e.scratch[:0])
		return len(e.scratch)
	}
	if bound := lz4.CompressBlockBound(lz4StoredBlockMax); cap(e.scratch) < bound {
		e.scratch = make([]byte, bound)
	}
	n := 0
	for len(p) > 0 {
		b := p[:min(len(p), lz4StoredBlockMax)]
		c, err := e.lz4Probe.CompressBlock(b, e.scratch[:cap(e.scratch)])
		if c == 0 || err != nil { // stored as it is
			c = len(b)
		}
		n += c
		p = p[len(b):]
	}
	return n
}

// copyInto copies size bytes of r to w: in one call from memory (a bytes reader's WriteTo), else
// through a pooled buffer.
func copyInto(w io.Writer, r io.Reader, size int64) (int64, error) {
	if wt, ok := r.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	bufp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bufp)
	return io.CopyBuffer(struct{ io.Writer }{w}, io.LimitReader(r, size), *bufp)
}

// Codec is the codec the Writer compresses with.
func (a *Writer) Codec() Codec { return a.codec }
