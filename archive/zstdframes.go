package archive

import (
	"bufio"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// zstdMaxBlock is the most content a zstd block holds (RFC 8878, 3.1.1.2.4).
const zstdMaxBlock = 128 << 10

// zstdFrames is frameFormat for zstd (RFC 8878).
type zstdFrames struct {
	all, one *zstd.Decoder // for whole frames (DecodeAll), for a frame read as a stream
}

// newZstdFrames returns the zstd frame format, decoding up to workers frames at once.
func newZstdFrames(workers int) (*zstdFrames, error) {
	whole, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderMaxMemory(maxParallelFrame),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxWindow(maxZstdWindow),
	)
	if err != nil {
		return nil, err
	}
	stream, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxZstdWindow),
	)
	if err != nil {
		whole.Close()
		return nil, err
	}
	return &zstdFrames{all: whole, one: stream}, nil
}

func (z *zstdFrames) name() string { return "zstd" }

func (z *zstdFrames) close() {
	z.all.Close()
	z.one.Close()
}

func (z *zstdFrames) next(br *bufio.Reader) (skip, size int, body frameBody, err error) {
	head, _ := br.Peek(zstd.HeaderMaxSize)
	var h zstd.Header
	if err := h.Decode(head); err != nil {
		return 0, 0, nil, fmt.Errorf("%w: zstd frame header: %w", ErrCorrupt, err)
	}
	if h.Skippable {
		return h.HeaderSize + int(h.SkippableSize), 0, nil, nil
	}
	size = -1
	if h.HasFCS && h.FrameContentSize <= maxParallelFrame && h.FirstBlock.OK && h.FirstBlock.Compressed &&
		2*h.FirstBlock.CompressedSize < min(int(h.FrameContentSize), zstdMaxBlock) {
		size = int(h.FrameContentSize)
	}
	sum := h.HasCheckSum
	return 0, size, &blockWalker{br: br, head: h.HeaderSize, sum: sum, block: func(br *bufio.Reader) (int, bool, error) {
		return zstdBlock(br, &sum)
	}}, nil
}

// zstdBlock reads the header of the next block (RFC 8878, 3.1.1.2), or, after the last, says the
// content checksum's 4 bytes come (once).
func zstdBlock(br *bufio.Reader, sum *bool) (int, bool, error) {
	hdr, err := br.Peek(3)
	if err != nil {
		return 0, false, fmt.Errorf("zstd block header: %w", unexpected(err))
	}
	v := uint32(hdr[0]) | uint32(hdr[1])<<8 | uint32(hdr[2])<<16
	size := int(v >> 3)
	switch (v >> 1) & 3 {
	case 1: // RLE: one byte, repeated
		size = 1
	case 3:
		return 0, false, fmt.Errorf("%w: a zstd block of the reserved type", ErrCorrupt)
	}
	last := v&1 == 1
	if last && *sum {
		*sum = false
		return 3 + size + 4, true, nil // the content checksum follows the last block
	}
	return 3 + size, last, nil
}

func (z *zstdFrames) whole(in, dst []byte, sum *xxhash.Digest) ([]byte, error) {
	out, err := z.all.DecodeAll(in, dst)
	if err == nil && sum != nil {
		_, _ = sum.Write(out)
	}
	return out, err
}

func (z *zstdFrames) stream(body io.Reader) (io.Reader, error) {
	if err := z.one.Reset(body); err != nil {
		return nil, err
	}
	return z.one, nil
}
