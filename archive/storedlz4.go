package archive

// pierrec/lz4 passes memory that does not compress at ~3.5 GB/s a core here: it copies each block
// into a buffer of its own and searches it for matches before storing it as it was. EntryEncoder
// writes such a chunk as an lz4 frame of uncompressed blocks itself, a copy, with the checksum
// frame after it (sumframe.go) as for its other lz4 frames. The frame is plain lz4 (the lz4 frame
// format): any decoder reads it.

import (
	"encoding/binary"
	"io"
)

// lz4StoredHeader begins a stored frame: magic; FLG (version 01, independent blocks, no block or
// content checksum, no content size); BD (64 KiB blocks, lz4Block); the header checksum (the
// second byte of the XXH32 of FLG and BD: TestStoredLZ4Header checks it against pierrec's).
var lz4StoredHeader = [7]byte{0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82}

// lz4StoredBlockMax is the most a block of a stored frame holds: its BD's block size.
const lz4StoredBlockMax = 64 << 10

// storedLZ4 writes one lz4 frame of uncompressed blocks. Not safe for concurrent use; reset it for
// each frame.
type storedLZ4 struct {
	w   io.Writer
	err error
}

// reset writes the header of a frame into w.
func (s *storedLZ4) reset(w io.Writer) error {
	*s = storedLZ4{w: w}
	_, s.err = w.Write(lz4StoredHeader[:])
	return s.err
}

func (s *storedLZ4) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 && s.err == nil {
		k := min(len(p), lz4StoredBlockMax)
		var size [4]byte
		binary.LittleEndian.PutUint32(size[:], uint32(k)|lz4Uncompressed)
		if _, s.err = s.w.Write(size[:]); s.err != nil {
			break
		}
		var m int
		m, s.err = s.w.Write(p[:k])
		written += m
		if s.err == nil && m < k {
			s.err = io.ErrShortWrite
		}
		p = p[k:]
	}
	return written, s.err
}

// close writes the end mark.
func (s *storedLZ4) close() error {
	if s.err == nil {
		_, s.err = s.w.Write(make([]byte, 4))
	}
	return s.err
}
