package adapters

import (
	"io"
	"sync"

	"github.com/cedana/cedana/internal/broadcast"
)

// Progress is where a long dump or restore stands, for clients that watch it. The zero value is
// ready; a nil *Progress ignores every call, so adapters report without checking.
type Progress struct {
	mu       sync.Mutex
	phase    string
	done     int64
	total    int64
	finished bool
	changed  broadcast.Signal
}

// Snapshot is a copy of a Progress at one moment.
type Snapshot struct {
	Phase       string
	Done, Total int64
	Finished    bool
}

// Start begins a phase of total bytes (0 when unknown).
func (p *Progress) Start(phase string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.phase, p.done, p.total = phase, 0, total
	p.mu.Unlock()
	p.changed.Notify()
}

// Add counts n more bytes done in the current phase.
func (p *Progress) Add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.done += n
	p.mu.Unlock()
	p.changed.Notify()
}

// Finish marks the operation over.
func (p *Progress) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.finished = true
	p.mu.Unlock()
	p.changed.Notify()
}

// Changed returns a channel closed at the next change. Take it before the Snapshot it follows.
func (p *Progress) Changed() <-chan struct{} { return p.changed.C() }

// Snapshot returns where the operation stands.
func (p *Progress) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Snapshot{Phase: p.phase, Done: p.done, Total: p.total, Finished: p.finished}
}

// countingReader reports what is read through it to a Progress.
type countingReader struct {
	r io.Reader
	p *Progress
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.Add(int64(n))
	return n, err
}
