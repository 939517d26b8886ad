package startgc

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRaiseAndRestore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		gogc   string
		raised int
	}{
		{name: "GOGC unset", gogc: "", raised: CommandPercent},
		{name: "GOGC set", gogc: "50", raised: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := debug.SetGCPercent(100)
			defer debug.SetGCPercent(before)
			previous = 0
			raise(func(string) string { return tc.gogc })
			assert.Equal(t, tc.raised, debug.SetGCPercent(tc.raised))
			Restore()
			assert.Equal(t, 100, debug.SetGCPercent(100), "Restore gives back the target init found")
			Restore()
			assert.Equal(t, 100, debug.SetGCPercent(100), "a second Restore changes nothing")
		})
	}
}
