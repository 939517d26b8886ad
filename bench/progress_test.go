package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"
)

// Words of memhog's -progress file (bench/memhog walk).
const (
	progSteps = iota
	progLast
	progResumed
	progResumedAt
	progWords
)

// readProgress reads memhog's progress file.
func readProgress(path string) ([progWords]uint64, error) {
	var p [progWords]uint64
	data, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if len(data) < 8*progWords {
		return p, fmt.Errorf("%s: %d bytes, want %d", path, len(data), 8*progWords)
	}
	for i := range p {
		p[i] = binary.NativeEndian.Uint64(data[8*i:])
	}
	return p, nil
}

// wallClock is CLOCK_REALTIME in ns, the clock memhog stamps its steps with (not the monotonic
// clock, which CRIU's time namespace sets back in a restored memhog: see memhog's wallClock).
func wallClock() uint64 { return uint64(time.Now().UnixNano()) }
