package archive

// Memory that does not compress costs zstd's fastest encoder ~1.3 GB/s a core here (its match
// search finds nothing, and each block is copied into its history and its output), only to write
// the block as it was. EntryEncoder writes such a chunk as a frame of raw blocks itself: a copy and
// a checksum, ~2.6 GB/s. The frame is plain zstd (RFC 8878): any decoder reads it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
)

const (
	zstdMagic = 0xFD2FB528
	// zstdStoredFHD is the frame header descriptor of a stored frame: an 8-byte content size, a
	// window descriptor (not a single segment), a content checksum, no dictionary.
	zstdStoredFHD = 3<<6 | 1<<2
	// zstdRawBlockMax is the largest block zstd allows (128 KiB, under EntryEncoder's window).
	zstdRawBlockMax = 128 << 10
	// storedProbe is how much of a chunk EntryEncoder compresses to decide whether it compresses.
	storedProbe = 128 << 10
)

// zstdWindowDescriptor encodes a power-of-two window of 1 KiB or more (exponent, no mantissa).
func zstdWindowDescriptor(window int) byte {
	exp := 0
	for 1<<(10+exp) < window {
		exp++
	}
	return byte(exp << 3)
}

// storedZstd writes one zstd frame of raw blocks holding content bytes. Not safe for concurrent
// use; reset it for each frame.
type storedZstd struct {
	w     io.Writer
	left  int64 // content bytes the frame is still to take
	block int   // bytes left in the current block
	sum   xxhash.Digest
	err   error
}

// reset writes the header of a frame of content bytes into w.
func (s *storedZstd) reset(w io.Writer, content int64) error {
	*s = storedZstd{w: w, left: content}
	s.sum.Reset()
	var hdr [4 + 1 + 1 + 8]byte
	binary.LittleEndian.PutUint32(hdr[:], zstdMagic)
	hdr[4] = zstdStoredFHD
	hdr[5] = zstdWindowDescriptor(entryWindow)
	binary.LittleEndian.PutUint64(hdr[6:], uint64(content))
	if _, err := w.Write(hdr[:]); err != nil {
		s.err = err
		return err
	}
	if content == 0 { // a frame has at least one block
		return s.beginBlock()
	}
	return nil
}

// beginBlock writes the header of the next raw block, the last one if it ends the content, and
// the checksum after an empty last block.
func (s *storedZstd) beginBlock() error {
	n := int(min(s.left, zstdRawBlockMax))
	word := uint32(n) << 3 // block type 0: raw
	if int64(n) == s.left {
		word |= 1 // last block
	}
	var hdr [3]byte
	hdr[0], hdr[1], hdr[2] = byte(word), byte(word>>8), byte(word>>16)
	if _, err := s.w.Write(hdr[:]); err != nil {
		return err
	}
	s.block = n
	if s.left == 0 {
		return s.writeSum()
	}
	return nil
}

// writeSum writes the content checksum: the low 32 bits of its XXH64.
func (s *storedZstd) writeSum() error {
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], uint32(s.sum.Sum64()))
	_, err := s.w.Write(sum[:])
	return err
}

func (s *storedZstd) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	written := 0
	for len(p) > 0 {
		if s.left == 0 {
			s.err = errors.New("stored zstd frame: more than its content size")
			return written, s.err
		}
		if s.block == 0 {
			if s.err = s.beginBlock(); s.err != nil {
				return written, s.err
			}
		}
		k := min(len(p), s.block)
		m, err := s.w.Write(p[:k])
		_, _ = s.sum.Write(p[:m])
		written += m
		s.block -= m
		s.left -= int64(m)
		if err == nil && m < k {
			err = io.ErrShortWrite
		}
		if err != nil {
			s.err = err
			return written, err
		}
		if s.left == 0 {
			if s.err = s.writeSum(); s.err != nil {
				return written, s.err
			}
		}
		p = p[k:]
	}
	return written, nil
}

// close reports whether the frame holds all its content.
func (s *storedZstd) close() error {
	if s.err != nil {
		return s.err
	}
	if s.left != 0 {
		return fmt.Errorf("stored zstd frame: %d bytes short of its content size", s.left)
	}
	return nil
}
