package archive

// lz4's content checksum is XXH32, which pierrec/lz4 computes at ~4.5 GB/s a core here: it halved
// the speed at which memory that does not compress went through an lz4 dump (1.7 against 3.5 GB/s)
// and a restore (1.8 against 3.4 GB/s). EntryEncoder's lz4 frames carry no checksum of their own;
// a skippable frame right after each holds the XXH64 of its content instead (cespare/xxhash, ~6
// GB/s), and frameReader checks it. Skippable frames are part of the lz4 frame format: the lz4
// tools, and pierrec's reader, pass over them.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
)

const (
	// sumFrameMagic is the magic number of a checksum frame, one of the skippable ones.
	sumFrameMagic = skippableMagic + 0xC
	// sumFramePayload is its payload's size: sumFrameTag, then the XXH64 (little-endian).
	sumFramePayload = 4 + 8
	// sumFrameSize is a checksum frame's size: magic, payload size, payload.
	sumFrameSize = 4 + 4 + sumFramePayload
)

// sumFrameTag begins a checksum frame's payload, so that another program's skippable frame of
// the same magic and size is not taken for one.
var sumFrameTag = [4]byte{'x', 'h', '6', '4'}

// errSumMismatch reports decoded content that does not match the checksum frame after it.
var errSumMismatch = errors.New("content does not match its checksum")

// appendSumFrame appends the checksum frame of content whose XXH64 is sum.
func appendSumFrame(b []byte, sum uint64) []byte {
	b = binary.LittleEndian.AppendUint32(b, sumFrameMagic)
	b = binary.LittleEndian.AppendUint32(b, sumFramePayload)
	b = append(b, sumFrameTag[:]...)
	return binary.LittleEndian.AppendUint64(b, sum)
}

// takeSumFrame consumes the checksum frame at the front of br, if one is there, and returns the
// checksum it holds.
func takeSumFrame(br *bufio.Reader) (sum uint64, ok bool, err error) {
	b, _ := br.Peek(sumFrameSize)
	if len(b) < sumFrameSize || binary.LittleEndian.Uint32(b) != sumFrameMagic ||
		binary.LittleEndian.Uint32(b[4:]) != sumFramePayload || [4]byte(b[8:12]) != sumFrameTag {
		return 0, false, nil
	}
	sum = binary.LittleEndian.Uint64(b[12:])
	if _, err := br.Discard(sumFrameSize); err != nil {
		return 0, false, fmt.Errorf("checksum frame: %w", err)
	}
	return sum, true, nil
}

// sumMismatch compares the XXH64 of content with the one a checksum frame gave for it.
func sumMismatch(got, want uint64) error {
	if got != want {
		return fmt.Errorf("%w (XXH64 %016x, not %016x)", errSumMismatch, got, want)
	}
	return nil
}

// summingReader is a frame's stream decoder that hashes what it hands over.
type summingReader struct {
	r   io.Reader
	sum *xxhash.Digest
}

func (s summingReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	_, _ = s.sum.Write(p[:n])
	return n, err
}
