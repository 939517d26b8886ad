package withcriu

import "time"

// timings are the durations between the steps of one CRIU request, logged at debug level so that
// the cost of what surrounds CRIU can be told from CRIU's own.
type timings struct {
	start time.Time
	last  time.Time
	attrs []any
}

// mark records the time since the previous mark (or start) under name.
func (t *timings) mark(name string) {
	now := time.Now()
	prev := t.last
	if prev.IsZero() {
		prev = t.start
	}
	if prev.IsZero() {
		prev = now
	}
	t.attrs = append(t.attrs, name, now.Sub(prev))
	t.last = now
}
