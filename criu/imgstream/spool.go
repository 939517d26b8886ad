package imgstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ChunkSize is the size of the pieces an image is drained in and handed to a Sink.
const ChunkSize = 16 << 20

// DefaultMemoryLimit is how much of CRIU's images may wait in memory for the Sink before the
// rest waits in a spill file (checkpoint.stream_memory_limit).
const DefaultMemoryLimit = 256 << 20

// spool holds drained chunks until the Sink takes them: in memory while the total stays under
// the limit, else appended to a spill file in dir (created on first need, removed at close).
type spool struct {
	mu      sync.Mutex
	limit   int64
	inMem   int64
	peak    int64
	dir     string
	spill   *os.File
	spillAt int64
	spilled int64
	free    [][]byte
	packed  []byte // the free rest of the buffer that small chunks are packed into
	pool    *Pool
	owned   []mapped // every buffer taken from the pool, given back at close
	reserve int64    // of the limit, kept for the lookahead until takeReserve (see lookahead)
}

// chunk is one drained piece of an image: in memory (data) or in the spill file (segs). A
// packed chunk's data shares its buffer with other chunks (see packBytes): it is never given back
// alone.
type chunk struct {
	data   []byte
	segs   []seg
	packed bool
}

// seg is a range of the spill file.
type seg struct{ off, n int64 }

// size is the number of bytes in c.
func (c chunk) size() int64 {
	if c.data != nil {
		return int64(len(c.data))
	}
	var n int64
	for _, s := range c.segs {
		n += s.n
	}
	return n
}

func newSpool(limit int64, dir string, pool *Pool) *spool {
	if limit <= 0 {
		limit = DefaultMemoryLimit
	}
	if pool == nil {
		pool = &Pool{}
	}
	return &spool{limit: limit, dir: dir, pool: pool}
}

// buffer returns a ChunkSize buffer to read into, or nil when memory is at its limit.
func (s *spool) buffer() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bufferLocked()
}

// bufferLocked is buffer with s.mu held.
func (s *spool) bufferLocked() []byte {
	if s.inMem+ChunkSize > s.limit-s.reserve {
		return nil
	}
	s.inMem += ChunkSize
	s.peak = max(s.peak, s.inMem)
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	buf, err := s.pool.get()
	if err != nil {
		s.inMem -= ChunkSize
		return nil // the chunk spills instead
	}
	s.owned = append(s.owned, buf)
	return buf.b
}

// takeReserve ends the reserve and returns n buffers from it, nil where there was none (one
// worker, a small limit) or there are not that many.
func (s *spool) takeReserve(n int) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reserve == 0 {
		return nil
	}
	s.reserve = 0
	bufs := make([][]byte, 0, n)
	for range n {
		b := s.bufferLocked()
		if b == nil {
			s.giveBackLocked(bufs)
			return nil
		}
		bufs = append(bufs, b)
	}
	return bufs
}

// giveBack returns whole ChunkSize buffers taken with takeReserve.
func (s *spool) giveBack(bufs [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.giveBackLocked(bufs)
}

func (s *spool) giveBackLocked(bufs [][]byte) {
	for _, b := range bufs {
		s.inMem -= ChunkSize
		s.free = append(s.free, b)
	}
}

// hugePage is the size of a transparent huge page on x86-64 and arm64 (4 KiB base pages).
const hugePage = 2 << 20

// packMost is the largest chunk that pack moves.
const packMost = 1 << 20

// packBytes keeps p, a small chunk, in the buffer that small chunks share: a held capture keeps
// every image to the end, and a tree of a few processes dumps dozens of images of a few KiB, which
// would fill the memory limit with ChunkSize buffers, one each, and leave the pages to spill.
// Where the memory limit leaves no room for a buffer to pack into, p goes to the spill file.
func (s *spool) packBytes(p []byte) (chunk, error) {
	if c, ok := s.packIn(p); ok {
		return c, nil
	}
	var c chunk
	if len(p) == 0 {
		return c, nil
	}
	err := s.spillTo(&c, p)
	return c, err
}

// pack moves a chunk of up to packMost bytes that has a buffer of its own into the shared one and
// gives its buffer back; other chunks, or where there is no room, it leaves as they are.
func (s *spool) pack(c chunk) chunk {
	if c.data == nil || c.packed || len(c.data) > packMost {
		return c
	}
	p, ok := s.packIn(c.data)
	if !ok {
		return c
	}
	s.release(c)
	return p
}

// packIn copies p into the shared buffer, starting a new one where it does not fit; false when
// the memory limit leaves no room for one.
func (s *spool) packIn(p []byte) (chunk, bool) {
	n := len(p)
	s.mu.Lock()
	if s.packed == nil || len(s.packed) < n {
		b := s.bufferLocked()
		if b == nil {
			s.mu.Unlock()
			return chunk{}, false
		}
		s.packed = b
	}
	dst := s.packed[:n:n]
	s.packed = s.packed[n:]
	s.mu.Unlock()
	copy(dst, p) // the range is the chunk's alone
	return chunk{data: dst, packed: true}, true
}

// release gives a memory chunk's buffer back (a packed chunk's stays until close), and a spilled
// chunk's ranges of the spill file back to its file system, where it can punch holes: a chunk
// encoded after CRIU was done, or handed to the sink, takes no disk space in temp_dir from then on.
func (s *spool) release(c chunk) {
	if c.data == nil {
		s.punch(c.segs)
		return
	}
	if c.packed {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.giveBackLocked([][]byte{c.data[:cap(c.data)]})
}

// spillTo appends p to the spill file and records where in c. The range is reserved under the
// lock and written outside it, so that a slow write holds up no other drainer.
func (s *spool) spillTo(c *chunk, p []byte) error {
	s.mu.Lock()
	if err := s.openSpill(); err != nil {
		s.mu.Unlock()
		return err
	}
	off, spill := s.spillAt, s.spill
	s.spillAt += int64(len(p))
	s.mu.Unlock()
	if _, err := spill.WriteAt(p, off); err != nil {
		return fmt.Errorf("spill streamed image data to %s: %w", s.dir, err)
	}
	s.mu.Lock()
	c.addSeg(off, int64(len(p)))
	s.spilled += int64(len(p))
	s.mu.Unlock()
	return nil
}

// addSeg records n bytes at off of the spill file as the next part of c: the last segment grows
// where the range continues it.
func (c *chunk) addSeg(off, n int64) {
	if k := len(c.segs); k > 0 && c.segs[k-1].off+c.segs[k-1].n == off {
		c.segs[k-1].n += n
		return
	}
	c.segs = append(c.segs, seg{off, n})
}

// punch frees the spill file's blocks under segs; where the file system cannot, they stay until
// close, as they always did.
func (s *spool) punch(segs []seg) {
	if len(segs) == 0 {
		return
	}
	s.mu.Lock()
	spill := s.spill
	s.mu.Unlock()
	if spill == nil {
		return
	}
	for _, g := range segs {
		if err := unix.Fallocate(int(spill.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, g.off, g.n); err != nil {
			return
		}
	}
}

// openSpill creates the spill file on first need; s.mu is held.
func (s *spool) openSpill() error {
	if s.spill != nil {
		return nil
	}
	f, err := os.CreateTemp(s.dir, "cedana-stream-spill-*")
	if err != nil {
		return fmt.Errorf("memory for streamed images is full and no spill file could be made (raise checkpoint.stream_memory_limit or free %s): %w", s.dir, err)
	}
	_ = os.Remove(f.Name()) // the open file lives on; nothing to clean up after a crash
	s.spill = f
	return nil
}

// errNoSplice is spliceFrom's answer where the kernel cannot splice into the spill file.
var errNoSplice = errors.New("cannot splice into the spill file")

// spliceFrom moves up to most bytes from pipe into the spill file in the kernel, without copying
// them through the daemon (as CRIU writes its own image files), and records where in c. It returns
// io.EOF at the pipe's end, errNoSplice where splice does not work. The range is reserved before
// the splice, which may block on CRIU, so that the lock is not held meanwhile; an unused tail of
// it stays a hole in the file.
func (s *spool) spliceFrom(c *chunk, pipe *os.File, most int) (int, error) {
	s.mu.Lock()
	if err := s.openSpill(); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	off, spill := s.spillAt, s.spill
	s.spillAt += int64(most)
	s.mu.Unlock()
	rc, err := pipe.SyscallConn()
	if err != nil {
		return 0, errNoSplice
	}
	var n int64
	var serr error
	err = rc.Read(func(fd uintptr) bool {
		o := off
		n, serr = unix.Splice(int(fd), nil, int(spill.Fd()), &o, most, unix.SPLICE_F_MOVE)
		return !errors.Is(serr, unix.EAGAIN)
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(serr, unix.EINVAL):
		return 0, errNoSplice
	case serr != nil:
		return 0, fmt.Errorf("spill streamed image data to %s: %w", s.dir, serr)
	case n == 0:
		return 0, io.EOF
	}
	s.mu.Lock()
	c.addSeg(off, n)
	s.spilled += n
	s.mu.Unlock()
	return int(n), nil
}

// reader returns the content of c.
func (s *spool) reader(c chunk) io.Reader {
	if c.data != nil {
		return bytes.NewReader(c.data) // its WriteTo hands a copy the chunk in one call
	}
	rs := make([]io.Reader, len(c.segs))
	for i, g := range c.segs {
		rs[i] = io.NewSectionReader(s.spill, g.off, g.n)
	}
	return io.MultiReader(rs...)
}

// close removes the spill file and unmaps the buffers: no chunk may be used after it.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spill != nil {
		s.spill.Close()
		s.spill = nil
	}
	s.pool.put(s.owned)
	s.owned, s.free, s.packed = nil, nil, nil
}
