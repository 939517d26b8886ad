package imgstream

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEncWriterRoom checks that an encoder's output stays in memory: a chunk whose output finds
// no room fails with errNoRoom, gives back what it took, and leaves the spill file alone; the
// writer then goes on where it was.
func TestEncWriterRoom(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     int64 // the spool's memory, in chunks
		held      int   // raw chunks the drainers hold in it
		first     int   // bytes of a first chunk's output, which fits
		second    int   // bytes of a second chunk's output
		fits      bool  // whether the second fits
		inMemLeft int64 // chunks counted in memory afterwards
	}{
		{"both in one buffer", 2, 1, 1 << 20, 1 << 20, true, 2},
		{"second crosses into a buffer of its own", 3, 1, ChunkSize - 10, 20, true, 3},
		{"no room for the second's next buffer", 2, 1, ChunkSize - 10, 20, false, 2},
		{"no room at all", 1, 1, 0, 10, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(tc.limit*ChunkSize, t.TempDir(), nil)
			defer s.close()
			for range tc.held {
				require.NotNil(t, s.buffer())
			}
			w := &encWriter{s: s}
			if tc.first > 0 {
				require.True(t, w.begin())
				_, err := w.Write(bytes.Repeat([]byte{1}, tc.first))
				require.NoError(t, err)
			}
			second := bytes.Repeat([]byte{2}, tc.second)
			ok := w.begin()
			if ok {
				_, err := w.Write(second)
				if err != nil {
					require.ErrorIs(t, err, errNoRoom)
					w.rewind()
					ok = false
				}
			}
			assert.Equal(t, tc.fits, ok)
			if ok {
				got, err := io.ReadAll(s.encodedReader(w.out))
				require.NoError(t, err)
				assert.Equal(t, second, got)
			}
			assert.Equal(t, tc.inMemLeft*ChunkSize, s.inMem)
			assert.Nil(t, s.spill, "an encoder never spills")
		})
	}
}
