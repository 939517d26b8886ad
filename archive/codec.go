// Package archive packs checkpoint directories into single archive files and
// unpacks them again.
//
// A checkpoint is a flat directory of regular files (CRIU images such as
// pages-1.img, dump.log, checkpoint.json). An archive is a tar stream of those
// files, all at the top level, optionally compressed with gzip, lz4, zlib or
// zstd. Writing streams file contents and uses several cores where the codec
// allows it; reading detects the format from the content (magic bytes) and
// treats the archive as hostile: see [Extract].
package archive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/pierrec/lz4/v4"
)

// Codec names a checkpoint compression mode.
type Codec string

// The supported codecs.
const (
	// None keeps the checkpoint as a plain directory: no archive is written.
	None Codec = "none"
	// Tar is an uncompressed tar archive.
	Tar Codec = "tar"
	// Gzip is a gzip-compressed tar archive.
	Gzip Codec = "gzip"
	// LZ4 is a tar archive compressed as an lz4 frame.
	LZ4 Codec = "lz4"
	// Zlib is a zlib-compressed tar archive.
	Zlib Codec = "zlib"
	// Zstd is a zstd-compressed tar archive.
	Zstd Codec = "zstd"
)

// Codecs lists every supported codec in the order used by error messages.
var Codecs = []Codec{None, Tar, Gzip, LZ4, Zlib, Zstd}

// ErrNotArchive is returned by [Detect] and [Extract] when the input is not in
// any of the supported archive formats.
var ErrNotArchive = errors.New("not a checkpoint archive (unrecognised format)")

// ParseCodec returns the codec named s (for example "zstd"). An unknown name
// yields an error listing the valid ones.
func ParseCodec(s string) (Codec, error) {
	for _, c := range Codecs {
		if string(c) == s {
			return c, nil
		}
	}
	names := make([]string, len(Codecs))
	for i, c := range Codecs {
		names[i] = string(c)
	}
	return "", fmt.Errorf("unknown compression %q: use one of %s", s, strings.Join(names, ", "))
}

// Extension returns the file name extension of archives written with c
// (".tar", ".tar.gz", ".tar.lz4", ".tar.zlib", ".tar.zst"), or "" for
// [None] and unknown codecs.
func (c Codec) Extension() string {
	switch c {
	case Tar:
		return ".tar"
	case Gzip:
		return ".tar.gz"
	case LZ4:
		return ".tar.lz4"
	case Zlib:
		return ".tar.zlib"
	case Zstd:
		return ".tar.zst"
	}
	return ""
}

// IsArchive reports whether c produces an archive file; it is false for
// [None], which keeps the checkpoint directory as it is, and for unknown
// codecs.
func (c Codec) IsArchive() bool { return c.Extension() != "" }

// String returns the codec name.
func (c Codec) String() string { return string(c) }

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicLZ4  = []byte{0x04, 0x22, 0x4d, 0x18}
)

// tarBlockSize is the size of a tar header or padding block.
const tarBlockSize = 512

// Detect identifies the codec of the stream in r from its first bytes,
// without consuming them (it only peeks, up to 512 bytes). It recognises
// zstd (28 b5 2f fd), lz4 frames (04 22 4d 18), gzip (1f 8b), tar ("ustar" at
// offset 257, or an all-zero first block, which is an empty tar archive) and
// zlib (a valid two-byte deflate header: CM=8, CINFO<=7, no preset
// dictionary, header checksum divisible by 31), in that order. Anything
// else yields an error wrapping [ErrNotArchive]. The name of the file the
// stream came from plays no part.
func Detect(r *bufio.Reader) (Codec, error) {
	head, err := r.Peek(tarBlockSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("read archive header: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicZstd):
		return Zstd, nil
	case bytes.HasPrefix(head, magicLZ4):
		return LZ4, nil
	case bytes.HasPrefix(head, magicGzip):
		return Gzip, nil
	case len(head) == tarBlockSize && isTarHeader(head):
		return Tar, nil
	case len(head) >= 2 && isZlibHeader(head[0], head[1]):
		return Zlib, nil
	}
	return "", ErrNotArchive
}

// isTarHeader reports whether block is a ustar/pax/gnu header block or the
// all-zero block that ends (or, alone, makes up) an empty archive.
func isTarHeader(block []byte) bool {
	if bytes.Equal(block[257:262], []byte("ustar")) {
		return true
	}
	for _, b := range block {
		if b != 0 {
			return false
		}
	}
	return true
}

// isZlibHeader checks the RFC 1950 stream header: deflate method, a window of
// at most 32 KiB, no preset dictionary and a valid check value.
func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && flg&0x20 == 0 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

// copyBufferSize is the chunk size used to stream file contents.
const copyBufferSize = 1 << 20

// copyBuffers recycles the streaming buffers of Writers and Extract calls.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// normWorkers turns a workers argument into a usable count: values below 1
// mean "all cores" (GOMAXPROCS).
func normWorkers(workers int) int {
	if workers < 1 {
		return runtime.GOMAXPROCS(0)
	}
	return workers
}

// compressor is a codec's stream encoder. Close flushes it without closing
// the underlying writer.
type compressor interface {
	io.Writer
	Close() error
}

// asCompressor converts a constructor's (*T, error) result to a compressor
// without turning a nil *T into a non-nil interface value.
func asCompressor[T compressor](v T, err error) (compressor, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// asDecompressor is asCompressor for decoders.
func asDecompressor[T decompressor](v T, err error) (decompressor, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// pgzipBlockSize is the size of the blocks pgzip compresses in parallel.
const pgzipBlockSize = 1 << 20

// newCompressor returns the encoder for c writing into w, using fast levels
// and up to workers goroutines where the codec supports it.
func newCompressor(w io.Writer, c Codec, workers int) (compressor, error) {
	switch c {
	case Tar:
		return nopWriteCloser{w}, nil
	case Gzip:
		if workers == 1 {
			return asCompressor(gzip.NewWriterLevel(w, gzip.BestSpeed))
		}
		zw, err := pgzip.NewWriterLevel(w, pgzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		// At most workers blocks are compressed at once, each on its own
		// goroutine, while the caller fills the next one.
		if err := zw.SetConcurrency(pgzipBlockSize, workers); err != nil {
			return nil, err
		}
		return zw, nil
	case LZ4:
		zw := lz4.NewWriter(w)
		if err := zw.Apply(lz4.ConcurrencyOption(workers), lz4.CompressionLevelOption(lz4.Fast), lz4.BlockSizeOption(lz4Block)); err != nil {
			return nil, err
		}
		return zw, nil
	case Zlib:
		return asCompressor(zlib.NewWriterLevel(w, zlib.BestSpeed))
	case Zstd:
		// One encoder: on a stream, more only overlap encoding with writing, which measured
		// 10-20% slower than one on 2 cores (see BenchmarkWrite).
		return newZstdWriter(w, zstdWorkers, zstdConcurrentBlocks)
	case None:
		return nil, errors.New("compression none keeps the checkpoint directory: there is no archive to write")
	}
	_, err := ParseCodec(string(c))
	return nil, err
}

// lz4Block is the size of the blocks of an lz4 archive. pierrec/lz4 compresses 64 KiB blocks
// about 1.4x faster than its default 4 MiB ones on compressible memory (one core: 467 against
// 339 MB/s; two: 641 against 579), to the same size, and decodes them as fast; only
// incompressible data goes slower, from 7.5 to 3.8 GB/s, which is still far faster than
// anything else a dump does with it.
const lz4Block = lz4.Block64Kb

// zstdConcurrentBlocks selects zstd's job-based parallel stream encoder
// (WithConcurrentBlocks) when workers > 1. It is off: with
// klauspost/compress v1.20.3 it was measured slower than the sequential
// encoder on 2 cores (about 0.6-0.9x the throughput while using ~1.9 cores;
// its per-job output buffers are regrown and copied, notably for
// incompressible pages). BenchmarkWrite measures both modes; re-evaluate on
// machines with many cores.
const zstdConcurrentBlocks = false

// zstdWorkers is the concurrency of zstd streams, whatever the callers' workers: more measured
// slower on 2 cores, for encoding and decoding alike. BenchmarkWrite measures it.
const zstdWorkers = 1

// newZstdWriter returns a SpeedFastest zstd encoder with workers-way
// encoder concurrency. Without concurrentBlocks, klauspost/compress encodes
// a stream one 128 KiB block at a time, overlapping only the encoding of a
// block with the writing of the previous one; with it, workers goroutines
// compress 32 MiB sections of the stream simultaneously (each primed with
// the tail of the previous section), still producing a single zstd frame.
func newZstdWriter(w io.Writer, workers int, concurrentBlocks bool) (compressor, error) {
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(workers),
		zstd.WithWindowSize(entryWindow), // as the frames encoded ahead: less for the daemon to hold
		zstd.WithLowerEncoderMem(true),
	}
	if concurrentBlocks && workers > 1 {
		opts = append(opts, zstd.WithConcurrentBlocks(true))
	}
	return asCompressor(zstd.NewWriter(w, opts...))
}

// decompressor is a codec's stream decoder. Close releases its goroutines and
// buffers; it does not close the underlying reader.
type decompressor interface {
	io.Reader
	Close() error
}

type nopReadCloser struct{ io.Reader }

func (nopReadCloser) Close() error { return nil }

type zstdReader struct{ *zstd.Decoder }

func (z zstdReader) Close() error { z.Decoder.Close(); return nil }

// maxZstdWindow bounds the memory a hostile zstd stream can make us allocate;
// it matches the default limit of the zstd command-line tool (windowLog 27).
const maxZstdWindow = 128 << 20

// newDecompressor returns the decoder for c reading from r.
func newDecompressor(r io.Reader, c Codec, workers int) (decompressor, error) {
	switch c {
	case Tar:
		return nopReadCloser{r}, nil
	case Gzip:
		if workers == 1 {
			return asDecompressor(gzip.NewReader(r))
		}
		// pgzip decodes on a read-ahead goroutine and checksums on another;
		// four 512 KiB blocks of read-ahead are plenty to keep both busy.
		return asDecompressor(pgzip.NewReaderN(r, 512<<10, 4))
	case LZ4:
		// Frames side by side (frameReader): pierrec's own concurrent reader measured no faster,
		// and holds blocks of up to 4 MiB in flight. With one worker as well: frameReader checks
		// the checksum frames of EntryEncoder's frames (sumframe.go), which pierrec's skips.
		return newFrameReader(r, newLZ4Frames()), nil
	case Zlib:
		return asDecompressor(zlib.NewReader(r))
	case Zstd:
		if workers > 1 {
			frames, err := newZstdFrames(min(workers, 2))
			if err != nil {
				return nil, err
			}
			return newFrameReader(r, frames), nil
		}
		zr, err := zstd.NewReader(r,
			zstd.WithDecoderConcurrency(zstdWorkers),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow),
		)
		if err != nil {
			return nil, err
		}
		return zstdReader{zr}, nil
	}
	return nil, fmt.Errorf("codec %q cannot be read", string(c))
}
