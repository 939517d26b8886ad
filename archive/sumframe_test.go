package archive

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/pierrec/lz4/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// encodeLZ4Entry is EntryEncoder's lz4 frame of one entry holding data, and that content (tar
// header, data, padding).
func encodeLZ4Entry(t *testing.T, data []byte) (frame, content []byte) {
	t.Helper()
	enc, err := NewEntryEncoder(LZ4)
	require.NoError(t, err)
	var out bytes.Buffer
	n, err := enc.Encode(&out, "pages-1.img", int64(len(data)), bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), n)
	content, err = io.ReadAll(lz4.NewReader(bytes.NewReader(out.Bytes())))
	require.NoError(t, err)
	return out.Bytes(), content
}

// TestLZ4SumFrames: EntryEncoder's lz4 frames carry no XXH32 of their own, and a checksum frame
// after each holds the XXH64 of their content; a chunk that does not compress is written in
// uncompressed blocks. pierrec's reader, frameReader (decoding whole and as a stream) and the lz4
// tool where there is one read them back byte for byte.
func TestLZ4SumFrames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   []byte
		stored bool
	}{
		{"compressible: decoded whole", compressibleBytes(1<<20, 1), false},
		{"random: stored, decoded as a stream", randomBytes(1<<20+17, 2), true},
		{"random, the probe's size", randomBytes(storedProbe, 6), true},
		{"random, under the probe", randomBytes(storedProbe-1, 7), false},
		{"random after a compressible probe", append(compressibleBytes(storedProbe, 8), randomBytes(1<<20, 9)...), false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame, content := encodeLZ4Entry(t, tc.data)
			assert.Zero(t, frame[4]&lz4ContentSum, "no XXH32 of the content")
			assert.Equal(t, tc.stored, [7]byte(frame) == lz4StoredHeader, "a frame of uncompressed blocks")
			if tc.stored {
				for at := len(lz4StoredHeader); ; {
					word := binary.LittleEndian.Uint32(frame[at:])
					if word == 0 {
						assert.Equal(t, len(frame)-sumFrameSize, at+4, "the end mark, then the checksum frame")
						break
					}
					require.NotZero(t, word&lz4Uncompressed, "a compressed block at %d", at)
					require.LessOrEqual(t, int(word&^lz4Uncompressed), lz4StoredBlockMax)
					at += 4 + int(word&^lz4Uncompressed)
				}
			}
			tail := frame[len(frame)-sumFrameSize:]
			assert.Equal(t, uint32(sumFrameMagic), binary.LittleEndian.Uint32(tail))
			assert.Equal(t, xxhash.Sum64(content), binary.LittleEndian.Uint64(tail[12:]))

			requireOneEntry(t, content, "pages-1.img", tc.data)

			// Two frames in a row: the checksum frame between them is taken as the first's.
			both := append(bytes.Clone(frame), frame...)
			fr := newFrameReader(bytes.NewReader(both), newLZ4Frames())
			fromFrames, err := io.ReadAll(fr)
			require.NoError(t, err)
			require.NoError(t, fr.Close())
			require.True(t, bytes.Equal(append(bytes.Clone(content), content...), fromFrames), "frameReader differs")
			requireToolDecodes(t, "lz4", both, fromFrames)
		})
	}
}

// TestLZ4SumMismatch: frameReader fails, with ErrCorrupt, on content that does not match the
// checksum frame after it, whether the frame was decoded whole or as a stream; a frame without a
// checksum of either kind (another writer's) reads as it is.
func TestLZ4SumMismatch(t *testing.T) {
	read := func(b []byte) ([]byte, error) {
		fr := newFrameReader(bytes.NewReader(b), newLZ4Frames())
		defer fr.Close()
		return io.ReadAll(fr)
	}
	for name, data := range map[string][]byte{
		"decoded whole":       compressibleBytes(1<<20, 3),
		"decoded as a stream": randomBytes(1<<20, 4),
	} {
		t.Run(name, func(t *testing.T) {
			frame, content := encodeLZ4Entry(t, data)
			bad := bytes.Clone(frame)
			bad[len(bad)-1] ^= 1 // the checksum
			_, err := read(bad)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.ErrorIs(t, err, errSumMismatch)

			bad = bytes.Clone(frame)
			bad[len(bad)/2] ^= 0x40 // a byte of a block: stored, or compressed (then it may not decode)
			_, err = read(bad)
			require.ErrorIs(t, err, ErrCorrupt)
			if name == "decoded as a stream" {
				assert.ErrorIs(t, err, errSumMismatch)
			}

			if name == "decoded whole" {
				bad = bytes.Clone(frame)
				bad[4+2+8] ^= 1 // the header's checksum
				_, err = read(bad)
				require.ErrorIs(t, err, ErrCorrupt)
				assert.ErrorIs(t, err, lz4.ErrInvalidHeaderChecksum)
			}

			unsummed := frame[:len(frame)-sumFrameSize]
			got, err := read(unsummed)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(content, got))
		})
	}
}

// TestSumFrameForeign: a skippable frame of the checksum's magic that is not a checksum frame (its
// size or tag differ) is passed over, as any skippable frame.
func TestSumFrameForeign(t *testing.T) {
	frame, content := encodeLZ4Entry(t, compressibleBytes(64<<10, 5))
	unsummed := frame[:len(frame)-sumFrameSize]
	other := appendSumFrame(nil, 0)
	copy(other[8:], "junk")
	got, err := io.ReadAll(newFrameReader(bytes.NewReader(append(bytes.Clone(unsummed), other...)), newLZ4Frames()))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, got))
}

// TestStoredLZ4Header: a stored frame's header is the one pierrec writes for a frame of lz4Block
// blocks with no checksum and no content size (its checksum byte is XXH32's, which we do not have).
func TestStoredLZ4Header(t *testing.T) {
	var out bytes.Buffer
	zw := lz4.NewWriter(&out)
	require.NoError(t, zw.Apply(lz4.BlockSizeOption(lz4Block), lz4.ChecksumOption(false)))
	_, err := zw.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	assert.Equal(t, lz4StoredHeader[:], out.Bytes()[:len(lz4StoredHeader)])
	assert.Equal(t, lz4StoredBlockMax, 64<<10<<(2*(int(lz4StoredHeader[5]>>4&7)-4)))
}

// TestStoredLZ4Writes: the stored writer passes on a failed or short write, and its content is
// what a decoder reads back whatever the sizes of the writes into it.
func TestStoredLZ4Writes(t *testing.T) {
	var s storedLZ4
	var out bytes.Buffer
	require.NoError(t, s.reset(&out))
	data := randomBytes(3*lz4StoredBlockMax+5, 10)
	for _, n := range []int{1, 511, lz4StoredBlockMax + 3, len(data)} {
		out.Truncate(len(lz4StoredHeader))
		for p := data; len(p) > 0; p = p[min(n, len(p)):] {
			m, err := s.Write(p[:min(n, len(p))])
			require.NoError(t, err)
			require.Equal(t, min(n, len(p)), m)
		}
		require.NoError(t, s.close())
		got, err := io.ReadAll(lz4.NewReader(bytes.NewReader(out.Bytes())))
		require.NoError(t, err, "writes of %d", n)
		require.True(t, bytes.Equal(data, got), "writes of %d", n)
		s.err = nil
	}
	require.NoError(t, s.reset(limitedWriter{n: 100}))
	_, err := s.Write(data)
	assert.ErrorIs(t, err, io.ErrShortWrite)
	_, err = s.Write(data)
	assert.ErrorIs(t, err, io.ErrShortWrite, "an error stays")
	assert.ErrorIs(t, s.close(), io.ErrShortWrite)
}

// limitedWriter takes n bytes, then writes short.
type limitedWriter struct{ n int }

func (l limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return l.n, nil
	}
	return len(p), nil
}

// TestLZ4PlainBlocks: only a frame of independent blocks without checksums or dictionary is
// decoded block by block; EntryEncoder's compressible frames are.
func TestLZ4PlainBlocks(t *testing.T) {
	frame, _ := encodeLZ4Entry(t, compressibleBytes(1<<20, 11))
	at, ok := lz4PlainBlocks(frame)
	require.True(t, ok, "EntryEncoder's frame")
	assert.Equal(t, 4+2+8+1, at, "magic, FLG BD, content size, header checksum")
	for _, tc := range []struct {
		name string
		flg  byte
		ok   bool
	}{
		{"no content size", lz4Version | lz4Independent, true},
		{"content size", lz4Version | lz4Independent | lz4ContentSize, true},
		{"dependent blocks", lz4Version | lz4ContentSize, false},
		{"block checksums", lz4Version | lz4Independent | lz4BlockSum, false},
		{"content checksum", lz4Version | lz4Independent | lz4ContentSum, false},
		{"dictionary", lz4Version | lz4Independent | lz4DictID, false},
		{"another version", lz4Independent, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := binary.LittleEndian.AppendUint32(nil, lz4FrameMagic)
			head = append(head, tc.flg, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0)
			_, ok := lz4PlainBlocks(head)
			assert.Equal(t, tc.ok, ok)
		})
	}
	_, ok = lz4PlainBlocks([]byte{0x50, 0x2a, 0x4d, 0x18, 0x60, 0x40, 0})
	assert.False(t, ok, "a skippable frame")
	_, ok = lz4PlainBlocks(frame[:5])
	assert.False(t, ok, "a cut header")
}

// TestLZ4DecodeBlocks: decoding block by block gives the content pierrec's reader gives, and
// hashes it; a frame cut short, with bytes after its end, or longer than its room fails.
func TestLZ4DecodeBlocks(t *testing.T) {
	data := append(compressibleBytes(300<<10, 12), randomBytes(100<<10, 13)...) // compressed and stored blocks
	var out bytes.Buffer
	zw := lz4.NewWriter(&out)
	require.NoError(t, zw.Apply(lz4.BlockSizeOption(lz4Block), lz4.ChecksumOption(false), lz4.SizeOption(uint64(len(data)))))
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	frame := out.Bytes()
	at, ok := lz4PlainBlocks(frame)
	require.True(t, ok)

	sum := xxhash.New()
	got, err := lz4DecodeBlocks(frame[at:], make([]byte, 0, len(data)), sum)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
	assert.Equal(t, xxhash.Sum64(data), sum.Sum64())

	_, err = lz4DecodeBlocks(frame[at:len(frame)-4], make([]byte, 0, len(data)), xxhash.New())
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "no end mark")
	_, err = lz4DecodeBlocks(frame[at:len(frame)-5000], make([]byte, 0, len(data)), xxhash.New())
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a block cut short")
	_, err = lz4DecodeBlocks(append(bytes.Clone(frame[at:]), 0), make([]byte, 0, len(data)), xxhash.New())
	require.ErrorContains(t, err, "after the lz4 frame's end")
	_, err = lz4DecodeBlocks(frame[at:], make([]byte, 0, len(data)-1), xxhash.New())
	require.Error(t, err, "one byte less room than the content")
}
