package testutil

import (
	"bytes"
	"sync"
)

// Buffer collects a process's output, written from several goroutines; it may be read while it
// is written.
type Buffer struct {
	// Limit, when positive, is about how much Buffer keeps: the start of the output, which says
	// why a process failed. Later writes are dropped.
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 && b.buf.Len() > b.Limit {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
