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

// TestSpoolReaderInMemory: a chunk in memory reads the same through Read and WriteTo (which
// io.Copy uses, so that the archive's copy needs no buffer of its own); a writer that takes part
// of it is reported, and the rest is still there to read.
func TestSpoolReaderInMemory(t *testing.T) {
	data := []byte("pages of a chunk held in memory")
	var s spool
	inMemory := func() io.Reader { return s.reader(chunk{data: data}) }
	require.NoError(t, iotest.TestReader(inMemory(), data))

	var out bytes.Buffer
	n, err := io.Copy(&out, inMemory())
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
			r := inMemory()
			wt, ok := r.(io.WriterTo)
			require.True(t, ok, "a chunk in memory writes itself")
			n, err := wt.WriteTo(tc.w)
			require.ErrorIs(t, err, tc.want)
			assert.Equal(t, int64(5), n)
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			assert.Equal(t, data[5:], rest)
		})
	}
}
