package cli

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestQuietGC(t *testing.T) {
	for _, tc := range []struct {
		gogc      string
		quiet     int
		restored  int
		unchanged bool
	}{
		{gogc: "", quiet: commandGCPercent, restored: 100},
		{gogc: "50", unchanged: true},
	} {
		t.Setenv("GOGC", tc.gogc)
		before := debug.SetGCPercent(100)
		gcPercent = 0
		quietGC()
		now := debug.SetGCPercent(100)
		if tc.unchanged {
			assert.Equal(t, 100, now, "GOGC=%q", tc.gogc)
		} else {
			assert.Equal(t, tc.quiet, now, "GOGC=%q", tc.gogc)
			debug.SetGCPercent(now)
			restoreGC()
			assert.Equal(t, tc.restored, debug.SetGCPercent(100), "GOGC=%q", tc.gogc)
		}
		gcPercent = 0
		debug.SetGCPercent(before)
	}
}
