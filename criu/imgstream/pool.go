package imgstream

import (
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/sysinfo"
)

// Pool keeps the chunk buffers of finished captures for the next ones. Fresh memory is slow to
// fault in on some VMs (~20 us a 4 KiB page): a dump whose images drain into buffers used before
// runs at the speed of a copy. A daemon holds one Pool; it keeps at most keep bytes of buffers
// (checkpoint.stream_memory_limit), so that a capture allowed more (a migration's, which holds
// the whole tree in memory) starts with the warm buffers and unmaps the others when it ends. The
// zero value keeps nothing: it maps buffers for each capture and unmaps them when it ends.
type Pool struct {
	keep int64 // bytes of buffers kept after a capture
	mu   sync.Mutex
	free []mapped
}

// NewPool returns a Pool that keeps up to keep bytes of buffers between captures (<= 0:
// DefaultMemoryLimit).
func NewPool(keep int64) *Pool {
	if keep <= 0 {
		keep = DefaultMemoryLimit
	}
	return &Pool{keep: keep}
}

// mapped is a ChunkSize buffer b inside its own mapping m.
type mapped struct{ b, m []byte }

// get returns a free buffer or maps a new one.
func (p *Pool) get() (mapped, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		buf := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return buf, nil
	}
	p.mu.Unlock()
	return mapBuffer()
}

// mapBuffer maps a ChunkSize buffer, aligned to huge pages and asking for them (fewer faults),
// unmapped rather than left in the Go heap once no longer kept.
func mapBuffer() (mapped, error) {
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

// Reserve maps and faults in buffers until the pool holds n bytes of free ones, for a capture
// about to hold that much (a migration's, which keeps the whole tree in memory): faulting fresh
// memory in is the slow part of draining CRIU's images on some VMs, and done here it is done
// before CRIU freezes the tree. It reserves nothing, and says why, where the memory is not there
// to spare (twice what it would add must be available). Buffers beyond what the pool keeps are
// unmapped when the next capture ends.
func (p *Pool) Reserve(n int64) error {
	if p == nil || p.keep <= 0 {
		return nil
	}
	p.mu.Lock()
	have := int64(len(p.free)) * ChunkSize
	p.mu.Unlock()
	if have >= n {
		return nil
	}
	if avail := sysinfo.MemAvailable(); avail < 2*(n-have) {
		return fmt.Errorf("%d MiB of memory available, less than twice the %d MiB to reserve", avail>>20, (n-have)>>20)
	}
	var bufs []mapped
	for ; have < n; have += ChunkSize {
		buf, err := mapBuffer()
		if err != nil {
			p.put(bufs)
			return fmt.Errorf("map a stream buffer: %w", err)
		}
		if unix.Madvise(buf.b, unix.MADV_POPULATE_WRITE) != nil { // before Linux 5.14
			for i := 0; i < len(buf.b); i += 4096 {
				buf.b[i] = 0
			}
		}
		bufs = append(bufs, buf)
	}
	p.mu.Lock()
	p.free = append(p.free, bufs...)
	p.mu.Unlock()
	return nil
}

// put takes back the buffers of a finished capture, and unmaps those beyond what it keeps
// (reserved ones left over included).
func (p *Pool) put(bufs []mapped) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, bufs...)
	keep := int(p.keep / ChunkSize)
	if len(p.free) <= keep {
		return
	}
	for _, buf := range p.free[keep:] {
		_ = unix.Munmap(buf.m)
	}
	p.free = p.free[:keep]
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
