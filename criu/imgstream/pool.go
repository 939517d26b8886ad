package imgstream

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Pool keeps the chunk buffers of finished captures for the next ones. Fresh memory is slow to
// fault in on some VMs (~20 us a 4 KiB page): a dump whose images drain into buffers used before
// runs at the speed of a copy. A daemon holds one Pool; what it keeps is at most what one capture
// used at once (checkpoint.stream_memory_limit). The zero value maps buffers for each capture
// and unmaps them when it ends.
type Pool struct {
	keep bool // keep buffers after a capture
	mu   sync.Mutex
	free []mapped
}

// NewPool returns a Pool that keeps buffers between captures.
func NewPool() *Pool { return &Pool{keep: true} }

// mapped is a ChunkSize buffer b inside its own mapping m.
type mapped struct{ b, m []byte }

// get returns a free buffer or maps a new one, aligned to huge pages and asking for them (fewer
// faults still), unmapped rather than left in the Go heap once no longer kept.
func (p *Pool) get() (mapped, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		buf := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return buf, nil
	}
	p.mu.Unlock()
	m, err := unix.Mmap(-1, 0, ChunkSize+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return mapped{}, err
	}
	off := 0
	if r := int(uintptr(unsafe.Pointer(&m[0])) % hugePage); r != 0 {
		off = hugePage - r
	}
	b := m[off : off+ChunkSize : off+ChunkSize]
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // a kernel without THP faults small pages
	return mapped{b: b, m: m}, nil
}

// put takes back the buffers of a finished capture.
func (p *Pool) put(bufs []mapped) {
	if !p.keep {
		for _, buf := range bufs {
			_ = unix.Munmap(buf.m)
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, bufs...)
}

// Release unmaps the buffers the pool keeps, for a daemon that stops. A nil Pool has none.
func (p *Pool) Release() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, buf := range p.free {
		_ = unix.Munmap(buf.m)
	}
	p.free = nil
}
