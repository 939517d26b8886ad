package archive

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestZstdWriterWindow: a zstd archive's frame asks its decoder for a window of at most
// entryWindow, as the frames encoded ahead do, so that neither the daemon writing it (whose
// RSS issue 14 bounds) nor a restore reading it holds a larger one.
func TestZstdWriterWindow(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Zstd, 2)
	require.NoError(t, err)
	data := bytes.Repeat([]byte("cedana image page "), 1<<20) // 18 MiB
	_, err = w.AddReader("pages-1.img", int64(len(data)), bytes.NewReader(data))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	var h zstd.Header
	require.NoError(t, h.Decode(buf.Bytes()))
	assert.False(t, h.SingleSegment, "a streamed frame declares its window")
	assert.LessOrEqual(t, h.WindowSize, uint64(entryWindow))
}

// TestLZ4Blocks: lz4 archives and the frames encoded ahead come in lz4Block blocks (the frame
// descriptor's BD byte), which compress faster than the library's default (see lz4Block).
func TestLZ4Blocks(t *testing.T) {
	data := bytes.Repeat([]byte("cedana image page "), 1<<20)
	var archived bytes.Buffer
	w, err := NewWriter(&archived, LZ4, 2)
	require.NoError(t, err)
	_, err = w.AddReader("pages-1.img", int64(len(data)), bytes.NewReader(data))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	e, err := NewEntryEncoder(LZ4)
	require.NoError(t, err)
	var encoded bytes.Buffer
	_, err = e.Encode(&encoded, "pages-2.img", int64(len(data)), bytes.NewReader(data))
	require.NoError(t, err)
	for name, frame := range map[string][]byte{"archive": archived.Bytes(), "entry": encoded.Bytes()} {
		require.Greater(t, len(frame), 6, name)
		require.Equal(t, []byte{0x04, 0x22, 0x4d, 0x18}, frame[:4], name)
		// BD: bits 4-6 hold the block size index, 4 for 64 KiB.
		assert.Equal(t, byte(4), frame[5]>>4&7, name)
	}
}
