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
