package imgstream

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shortWriter takes at most max bytes a call, then fails or not.
type shortWriter struct {
	bytes.Buffer
	max int
	err error
}

func (w *shortWriter) Write(p []byte) (int, error) {
	n, _ := w.Buffer.Write(p[:min(len(p), w.max)])
	return n, w.err
}

// TestByteReader: a chunk in memory reads the same through Read and WriteTo; a writer that takes
// part of it is reported, and the rest is still there to read.
func TestByteReader(t *testing.T) {
	data := []byte("pages of a chunk held in memory")
	require.NoError(t, iotest.TestReader(&byteReader{data}, data))

	var out bytes.Buffer
	n, err := io.Copy(&out, &byteReader{data})
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n)
	assert.Equal(t, data, out.Bytes())

	boom := errors.New("disk full")
	for name, tc := range map[string]struct {
		w    *shortWriter
		want error
	}{
		"short write": {&shortWriter{max: 5}, io.ErrShortWrite},
		"failed":      {&shortWriter{max: 5, err: boom}, boom},
	} {
		t.Run(name, func(t *testing.T) {
			r := &byteReader{data}
			n, err := r.WriteTo(tc.w)
			require.ErrorIs(t, err, tc.want)
			assert.Equal(t, int64(5), n)
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			assert.Equal(t, data[5:], rest)
		})
	}
}
