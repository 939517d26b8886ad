package bench

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
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

// monotonic is CLOCK_MONOTONIC in ns, the clock memhog stamps its steps with.
func monotonic() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
