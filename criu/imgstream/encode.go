package imgstream

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
)

// EncodingSink is a Sink that also takes the pages images' chunks encoded ahead of time: a held
// capture encodes them (compresses them into whole frames) while CRIU is still dumping, keeps
// what the encoders wrote instead of the chunks, and hands it over in restore order.
type EncodingSink interface {
	Sink
	// NewEncoder returns an encoder for one worker; an error means the sink takes no encoded
	// chunks (a codec whose frames may not follow one another), and the capture keeps the chunks.
	NewEncoder() (ChunkEncoder, error)
	// PutEncoded takes chunk n of name (size bytes before encoding; last as for Put) as an
	// encoder wrote it, read from r.
	PutEncoded(name string, n int, last bool, size int64, r io.Reader) error
}

// DirectEncodingSink is an EncodingSink that also has an encoder write a chunk straight into it:
// how the capture hands over the pages chunks no worker encoded, so that they become frames of
// their own like the others (and an encoder's way with memory that does not compress applies).
type DirectEncodingSink interface {
	EncodingSink
	// DirectEncoder returns an encoder for PutEncoding, or false where the sink compresses such
	// chunks as fast itself.
	DirectEncoder() (ChunkEncoder, bool)
	// PutEncoding has enc write chunk n of name, size bytes of r (last as for Put), into the sink.
	PutEncoding(enc ChunkEncoder, name string, n int, last bool, size int64, r io.Reader) error
}

// ChunkEncoder encodes chunks for an EncodingSink's PutEncoded. One per worker.
type ChunkEncoder interface {
	// Encode writes chunk n of name, size bytes of r (last as for Sink.Put), encoded to w.
	Encode(w io.Writer, name string, n int, last bool, size int64, r io.Reader) error
}

// NewEncoder implements EncodingSink: an archive of a codec whose frames may be concatenated
// (archive.Codec.Concatenable) takes the pages compressed ahead of time.
func (a ArchiveSink) NewEncoder() (ChunkEncoder, error) {
	e, err := archive.NewEntryEncoder(a.W.Codec())
	if err != nil {
		return nil, err
	}
	return entryEncoder{e}, nil
}

// PutEncoded implements EncodingSink.
func (a ArchiveSink) PutEncoded(_ string, _ int, _ bool, _ int64, r io.Reader) error {
	_, err := a.W.AppendFrames(r)
	return err
}

// DirectEncoder implements DirectEncodingSink: where the codec's EntryEncoder passes memory that
// does not compress faster than the archive's own encoder (archive.EntryEncoder.OutpacesWriter).
func (a ArchiveSink) DirectEncoder() (ChunkEncoder, bool) {
	e, err := archive.NewEntryEncoder(a.W.Codec())
	if err != nil || !e.OutpacesWriter() {
		return nil, false
	}
	return entryEncoder{e}, true
}

// PutEncoding implements DirectEncodingSink.
func (a ArchiveSink) PutEncoding(enc ChunkEncoder, name string, n int, last bool, size int64, r io.Reader) error {
	return a.W.AppendEncoded(func(dst io.Writer) error { return enc.Encode(dst, name, n, last, size, r) })
}

type entryEncoder struct{ e *archive.EntryEncoder }

// Encode writes the chunk as the archive entry ArchiveSink.Put would add, in frames of its own.
func (e entryEncoder) Encode(w io.Writer, name string, n int, last bool, size int64, r io.Reader) error {
	_, err := e.e.Encode(w, entryName(name, n, last), size, r)
	return err
}

// entryName is the archive entry of chunk n of name: the image itself, or one of its parts.
func entryName(name string, n int, last bool) string {
	if n > 0 || !last {
		return archive.PartName(name, n)
	}
	return name
}

// decodeEntry reads the one archive entry that an entryEncoder wrote into r (for Rescue, which
// writes the images as files).
func decodeEntry(r io.Reader, size int64, put func(io.Reader) error) error {
	ts, err := archive.OpenTar(r, 1)
	if err != nil {
		return fmt.Errorf("decode a compressed image chunk: %w", err)
	}
	defer ts.Close()
	if _, err := ts.Next(); err != nil {
		return fmt.Errorf("decode a compressed image chunk: %w", err)
	}
	return put(io.LimitReader(ts, size))
}

// encoding runs the workers that encode a held capture's pages chunks. While CRIU dumps, one
// worker encodes, on an OS thread of the lowest priority, so that it only takes CPU time that
// CRIU and the drainers leave; once CRIU is done, that thread gets its priority back and the
// other workers join it.
type encoding struct {
	c       *Capture
	sink    EncodingSink
	first   ChunkEncoder
	placer  *placer // the first worker's way to place the pages chunks; nil: none
	workers int
	jobs    chan *item
	wg      sync.WaitGroup
	// Bytes of the chunks encoded so far, before and after: whether spilling an encoder's output
	// is worth it (see spillWorth).
	in, out atomic.Int64
	tried   atomic.Bool   // a chunk was tried with its output spilled before any was encoded
	trial   chan struct{} // closed when that chunk is done
}

// spillWorth is how many times smaller than the chunks the encoded output must have come out so
// far for an encoder to spill it once CRIU is done. An incompressible chunk spilled once raw and
// again encoded costs more than the archive writer's one core takes to pass it through.
const spillWorth = 2

// worthSpilling says whether the chunks encoded so far shrank enough to spill the output. With
// none encoded yet, the first to ask tries (trial: it closes e.trial when done) and the others
// wait for its outcome.
func (e *encoding) worthSpilling() (worth, trial bool) {
	if e.in.Load() == 0 {
		if e.tried.CompareAndSwap(false, true) {
			return true, true
		}
		<-e.trial
	}
	in, out := e.in.Load(), e.out.Load()
	return in > 0 && out*spillWorth <= in, false
}

// lowPriority is the nice value of the worker that encodes while CRIU dumps.
const lowPriority = 19

// startEncoding starts the encoding of c's pages chunks into sink, or returns nil when the sink
// takes no encoded chunks.
func startEncoding(c *Capture, sink Sink, workers int) *encoding {
	es, ok := sink.(EncodingSink)
	if !ok {
		return nil
	}
	first, err := es.NewEncoder()
	if err != nil {
		return nil
	}
	e := &encoding{c: c, sink: es, first: first, placer: newPlacer(sink), workers: max(workers, 1), jobs: make(chan *item, 1<<16), trial: make(chan struct{})}
	tid := make(chan int, 1)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		// The thread is not unlocked: it ends with this goroutine, its priority with it.
		runtime.LockOSThread()
		id := unix.Gettid()
		_ = unix.Setpriority(unix.PRIO_PROCESS, id, lowPriority) // at worst it runs at the daemon's
		tid <- id
		e.work(first, e.placer)
	}()
	// The kernel's getpriority answers 20 - nice.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	nice := 20 - prio
	go func() {
		id := <-tid
		select {
		case <-c.drained:
		case <-c.flush: // aborted
		}
		if err == nil && nice < lowPriority { // back to the daemon's (needs CAP_SYS_NICE; else it lags)
			_ = unix.Setpriority(unix.PRIO_PROCESS, id, nice)
		}
		for range e.workers - 1 {
			enc, err := es.NewEncoder()
			if err != nil {
				break
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				e.work(enc, nil)
			}()
		}
	}()
	return e
}

// work encodes chunks until there are no more: into their place in the archive with pl while
// they come in order (pl: nil, never), else into memory.
func (e *encoding) work(enc ChunkEncoder, pl *placer) {
	w := &encWriter{s: e.c.spool}
	for it := range e.jobs {
		if pl == nil || !e.place(enc, it) {
			e.encode(enc, w, it)
		}
		close(it.encoded)
	}
	if pl != nil {
		pl.end()
	}
}

// encode encodes it. While CRIU dumps, the output goes into memory only: an encoder never spills
// then, as the spill file is the drainers' and a spill written by a nice-19 thread would hold them
// up while CRIU waits, the tree frozen. Where the memory limit leaves no room, the encoder waits
// until CRIU is done and encodes the chunk then, its output in memory where there is room again
// (encoding a chunk held in memory frees its buffer) and in the spill file where not, if the
// pages compress well (worthSpilling), so that they are compressed on the workers' cores rather
// than by the archive writer's one. Otherwise, on failure, or once the capture has failed, the
// chunk stays as it is (the archive writer compresses it at the end).
func (e *encoding) encode(enc ChunkEncoder, w *encWriter, it *item) {
	for {
		if e.c.failed() {
			return
		}
		late, trial := isClosed(e.c.drained), false
		w.spill = false
		if late {
			w.spill, trial = e.worthSpilling()
		}
		done := e.try(enc, w, it, late)
		if trial {
			close(e.trial)
		}
		if done || !w.noRoom || late {
			return
		}
		select {
		case <-e.c.drained:
		case <-e.c.flush:
			if !isClosed(e.c.drained) { // aborted while CRIU dumps
				return
			}
		}
	}
}

// try encodes it with w; false where it stays as it is.
func (e *encoding) try(enc ChunkEncoder, w *encWriter, it *item, late bool) bool {
	if !w.begin() {
		return false
	}
	if err := enc.Encode(w, it.name, it.n, it.last, it.size, e.c.spool.reader(it.c)); err != nil {
		w.rewind()
		return false
	}
	e.in.Add(it.size)
	e.out.Add(chunksSize(w.out))
	it.enc, it.later = w.out, late
	e.c.spool.release(it.c)
	it.c = chunk{}
	return true
}

// chunksSize is the number of bytes in cs.
func chunksSize(cs []chunk) int64 {
	var n int64
	for _, c := range cs {
		n += c.size()
	}
	return n
}

// isClosed says whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// errNoRoom is encWriter's answer once the memory limit leaves no buffer for the encoded chunk.
var errNoRoom = errors.New("no memory left for an encoded chunk")

// encWriter writes a worker's encoded chunks into the spool's memory, packed into buffers it
// keeps until the capture ends; where there is no room, into the spill file if spill is set, else
// nowhere (errNoRoom).
type encWriter struct {
	s      *spool
	spill  bool     // what finds no room in memory goes to the spill file
	noRoom bool     // the current chunk met errNoRoom
	buf    []byte   // the free part of the current buffer (length 0)
	start  []byte   // buf when the current chunk began
	taken  [][]byte // the buffers taken while writing the current chunk, whole
	out    []chunk  // what the current chunk's encoding went into
}

// begin starts a chunk; false when there is no memory for any of its output.
func (w *encWriter) begin() bool {
	w.out, w.taken, w.noRoom = nil, w.taken[:0], false
	if cap(w.buf) == 0 {
		if b := w.s.buffer(); b != nil {
			w.buf = b[:0] // kept as the writer's current buffer even if the chunk fails
		} else if !w.spill {
			w.noRoom = true
			return false
		}
	}
	w.start = w.buf
	return true
}

// rewind gives back what the current chunk's encoding took: the buffers it began, the part of
// the one it continued, and what it spilled.
func (w *encWriter) rewind() {
	for _, b := range w.taken {
		w.s.release(chunk{data: b})
	}
	for _, c := range w.out {
		if c.data == nil {
			w.s.release(c)
		}
	}
	w.buf, w.out, w.taken = w.start, nil, w.taken[:0]
}

func (w *encWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if cap(w.buf) == 0 {
			b := w.s.buffer()
			if b == nil && w.spill {
				if err := w.spillRest(p); err != nil {
					return n - len(p), err
				}
				return n, nil
			}
			if b == nil {
				w.noRoom = true
				return n - len(p), errNoRoom
			}
			w.buf = b[:0]
			w.taken = append(w.taken, b)
		}
		k := copy(w.buf[:cap(w.buf)], p)
		w.out = append(w.out, chunk{data: w.buf[:k:k]})
		w.buf = w.buf[k:k]
		p = p[k:]
	}
	return n, nil
}

// spillRest appends p to the spill file, continuing the current chunk's last spilled piece.
func (w *encWriter) spillRest(p []byte) error {
	if k := len(w.out); k > 0 && w.out[k-1].data == nil {
		return w.s.spillTo(&w.out[k-1], p)
	}
	var c chunk
	err := w.s.spillTo(&c, p)
	if err == nil {
		w.out = append(w.out, c)
	}
	return err
}

// encodedReader reads an encoded chunk back.
func (s *spool) encodedReader(out []chunk) io.Reader {
	rs := make([]io.Reader, len(out))
	for i, c := range out {
		rs[i] = s.reader(c)
	}
	return io.MultiReader(rs...)
}

// putAll hands the held chunks to sink: the capture's own (own), or Rescue's.
func (c *Capture) putAll(sink Sink, own bool) error {
	var n, encoded, later, placed int64
	var pl *placer // the chunks placed ahead of the others
	if c.enc != nil {
		pl = c.enc.placer
	}
	frontEnded := pl == nil || !own
	es, _ := sink.(EncodingSink)
	var direct func(it *item) error // this goroutine's encoder, for the pages chunks no worker encoded
	if ds, ok := sink.(DirectEncodingSink); ok && c.enc != nil {
		if enc, ok := ds.DirectEncoder(); ok {
			direct = func(it *item) error {
				return ds.PutEncoding(enc, it.name, it.n, it.last, it.size, c.spool.reader(it.c))
			}
		}
	}
	ahead := c.startLookahead(es)
	defer ahead.stop()
	for i, it := range c.held {
		if !frontEnded && isPages(it.name) {
			frontEnded = true
			if err := pl.endFront(); err != nil {
				return err
			}
		}
		if it.encoded != nil {
			<-it.encoded
		}
		if it.placed {
			if !own {
				err := decodeEntry(pl.section(it), it.size, func(r io.Reader) error {
					return sink.Put(it.name, it.n, it.last, it.size, r)
				})
				if err != nil {
					return err
				}
			}
			n += it.size
			placed += it.size
			continue
		}
		if out, ok := ahead.take(it); ok {
			if err := es.PutEncoded(it.name, it.n, it.last, it.size, c.spool.encodedReader(out)); err != nil {
				return err
			}
			n += it.size
			later += it.size
			continue
		}
		if it.encoded != nil && it.enc == nil {
			// The writer compresses this one; the lookahead the next one meanwhile.
			ahead.begin(c.held[i+1:])
		}
		if err := c.put(sink, es, direct, it); err != nil {
			return err
		}
		n += it.size
		switch {
		case it.enc != nil && it.later:
			later += it.size
		case it.enc != nil:
			encoded += it.size
		}
	}
	if !frontEnded {
		if err := pl.endFront(); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.stats.Bytes, c.stats.Encoded, c.stats.EncodedLater, c.stats.Placed = n, encoded, later, placed
	c.mu.Unlock()
	return nil
}

// put hands it to sink: an encoded chunk to es (nil: decoded, to sink), a pages chunk left as it
// is to direct (if any) to encode into sink, else the chunk itself.
func (c *Capture) put(sink Sink, es EncodingSink, direct func(*item) error, it *item) error {
	if it.encoded != nil {
		<-it.encoded
	}
	switch {
	case it.enc == nil && it.encoded != nil && direct != nil:
		return direct(it)
	case it.enc == nil:
		return sink.Put(it.name, it.n, it.last, it.size, c.spool.reader(it.c))
	case es != nil:
		return es.PutEncoded(it.name, it.n, it.last, it.size, c.spool.encodedReader(it.enc))
	}
	return decodeEntry(c.spool.encodedReader(it.enc), it.size, func(r io.Reader) error {
		return sink.Put(it.name, it.n, it.last, it.size, r)
	})
}
