package archive

import (
	"bytes"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStoredZstdFrames: a chunk that does not compress is written as a frame of raw blocks that
// zstd decoders read back byte for byte (klauspost's, frameReader, and the zstd tool where there
// is one); a chunk that compresses, or one too small to probe, is compressed as before.
func TestStoredZstdFrames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   []byte
		stored bool
	}{
		{"random, the probe's size", randomBytes(storedProbe, 1), true},
		{"random, a block and a byte", randomBytes(zstdRawBlockMax+1, 2), true},
		{"random, 1 MiB and some", randomBytes(1<<20+17, 3), true},
		{"random, a chunk", randomBytes(16<<20, 4), true},
		{"random, under the probe", randomBytes(storedProbe-1, 5), false},
		{"compressible", compressibleBytes(1<<20, 6), false},
		{"random after a compressible probe", append(compressibleBytes(storedProbe, 7), randomBytes(1<<20, 8)...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := NewEntryEncoder(Zstd)
			require.NoError(t, err)
			var frame bytes.Buffer
			n, err := enc.Encode(&frame, "pages-1.img", int64(len(tc.data)), bytes.NewReader(tc.data))
			require.NoError(t, err)
			require.Equal(t, int64(len(tc.data)), n)
			assert.Equal(t, tc.stored, frame.Bytes()[4] == zstdStoredFHD && frame.Bytes()[14]>>1&3 == 0, "a frame of raw blocks")

			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
			require.NoError(t, err)
			defer dec.Close()
			plain, err := dec.DecodeAll(frame.Bytes(), nil)
			require.NoError(t, err)
			requireOneEntry(t, plain, "pages-1.img", tc.data)

			fromFrames, err := io.ReadAll(newFrameReader(bytes.NewReader(frame.Bytes()), frameCodecs[0].format(t)))
			require.NoError(t, err)
			require.True(t, bytes.Equal(plain, fromFrames), "frameReader differs")
			requireToolDecodes(t, "zstd", frame.Bytes(), plain)
		})
	}
}

// TestStoredZstdBroken: a stored frame whose content or checksum changed fails to decode; the
// writer refuses more or less content than the frame says.
func TestStoredZstdBroken(t *testing.T) {
	enc, err := NewEntryEncoder(Zstd)
	require.NoError(t, err)
	data := randomBytes(300<<10, 9)
	var frame bytes.Buffer
	_, err = enc.Encode(&frame, "pages-1.img", int64(len(data)), bytes.NewReader(data))
	require.NoError(t, err)
	dec, err := zstd.NewReader(nil)
	require.NoError(t, err)
	defer dec.Close()
	for _, at := range []int{20 + 1000, frame.Len() - 2} { // in the content, in the checksum
		bad := bytes.Clone(frame.Bytes())
		bad[at] ^= 0x40
		_, err := dec.DecodeAll(bad, nil)
		assert.Error(t, err, "byte %d flipped", at)
	}

	var s storedZstd
	require.NoError(t, s.reset(io.Discard, 10))
	_, err = s.Write(make([]byte, 11))
	assert.Error(t, err, "more than its content")
	require.NoError(t, s.reset(io.Discard, 10))
	_, err = s.Write(make([]byte, 9))
	require.NoError(t, err)
	assert.Error(t, s.close(), "short of its content")
	var empty bytes.Buffer
	require.NoError(t, s.reset(&empty, 0))
	require.NoError(t, s.close())
	plain, err := dec.DecodeAll(empty.Bytes(), nil)
	require.NoError(t, err)
	assert.Empty(t, plain)
}

// TestOutpacesWriter: zstd's and lz4's entry encoders pass memory that does not compress faster
// than a Writer; gzip's is the Writer's.
func TestOutpacesWriter(t *testing.T) {
	for c, want := range map[Codec]bool{Zstd: true, LZ4: true, Gzip: false} {
		enc, err := NewEntryEncoder(c)
		require.NoError(t, err)
		assert.Equal(t, want, enc.OutpacesWriter(), c)
	}
}
