package adapters

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestStreamRoom: a stream starts only where the archive and, on its own file system or the
// archive's, the spill file of what exceeds the memory limit fit with a tenth to spare.
func TestStreamRoom(t *testing.T) {
	const mib = 1 << 20
	fs := func(dev uint64, free int64) *fsRoom { return &fsRoom{dir: "/fs", dev: dev, free: free * mib} }
	for _, tc := range []struct {
		name        string
		need, limit int64 // MiB
		dest, spill *fsRoom
		want        string // "" where the stream may start
	}{
		{"fits in memory, archive has room", 100, 256, fs(1, 111), nil, ""},
		{"fits in memory, archive lacks room", 100, 256, fs(1, 100), nil, "less than the workload's memory (100 MiB)"},
		{"upload that fits in memory", 1024, 2048, nil, nil, ""},
		{"shared file system with room for both", 1024, 256, fs(1, 1980), fs(1, 1980), ""},
		{"shared file system with room for the archive only", 1024, 256, fs(1, 1200), fs(1, 1200), "and the spill file of its part beyond checkpoint.stream_memory_limit (1792 MiB)"},
		{"separate spill with room", 1024, 256, fs(1, 1200), fs(2, 900), ""},
		{"separate spill without room", 1024, 256, fs(1, 5000), fs(2, 800), "(checkpoint.temp_dir) has 800 MiB free, less than the spill file"},
		{"archive without room, spill elsewhere", 1024, 256, fs(1, 1000), fs(2, 5000), "less than the workload's memory (1024 MiB)"},
		{"upload spilling with room", 1024, 256, nil, fs(2, 900), ""},
		{"upload spilling without room", 1024, 256, nil, fs(2, 10), "less than the spill file of the workload's memory beyond checkpoint.stream_memory_limit (768 MiB)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := streamRoom(tc.need*mib, tc.limit*mib, tc.dest, tc.spill)
			if tc.want == "" {
				assert.Empty(t, got)
			} else {
				assert.Contains(t, got, tc.want)
			}
		})
	}
}
