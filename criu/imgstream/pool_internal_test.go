package imgstream

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPoolKeeps checks that a Pool hands out the buffers it kept first and keeps no more than
// its bound after a capture that used more.
func TestPoolKeeps(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pool       *Pool
		used, kept int
	}{
		{"a capture within the bound", NewPool(3 * ChunkSize), 2, 2},
		{"a capture beyond the bound", NewPool(3 * ChunkSize), 5, 3},
		{"the zero value keeps nothing", &Pool{}, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.pool.Release()
			bufs := make([]mapped, tc.used)
			for i := range bufs {
				var err error
				bufs[i], err = tc.pool.get()
				require.NoError(t, err)
				bufs[i].b[0] = byte(i + 1) // touched: mapped and writable
			}
			tc.pool.put(bufs)
			require.Len(t, tc.pool.free, tc.kept)
			for i := range tc.kept {
				again, err := tc.pool.get()
				require.NoError(t, err)
				assert.Equal(t, &bufs[tc.kept-1-i].b[0], &again.b[0], "a kept buffer comes back first")
			}
		})
	}
}
