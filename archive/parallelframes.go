package archive

// A zstd or lz4 stream decodes on one core (klauspost/compress pipelines the stages of one zstd
// frame, and pierrec/lz4's concurrent reader, both measured no faster on 2 cores), and a restore
// from a compressible archive waited on it. Cedana's archives are mostly frames of one image chunk
// each (EntryEncoder's, 16 MiB, their size in their header), so frameReader decodes those frames
// side by side, a few ahead of the reader, and hands their output over in order. A frame that does
// not say its size, says more than maxParallelFrame, or whose first block is stored or compressed
// to more than half (memory that does not compress: decoding it is little more than a copy, and
// holding it whole would cost memory and copies for nothing) is decoded as a stream in turn, with
// no more memory than the stream decoder's.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

const (
	// maxParallelFrame bounds the content of a frame decoded whole, and so the memory each of
	// the frames in flight holds.
	maxParallelFrame = 32 << 20
	// framesAhead is how many whole frames are decoded ahead of the one being read.
	framesAhead = 2
	// frameBufSize is the least size of the buffers frames are read and decoded into: an
	// EntryEncoder frame's content (a 16 MiB chunk and its tar header), or the frame itself.
	frameBufSize = 16<<20 + 64<<10 + (16<<20)/64 + 8<<10
	// skippableMagic is the first of the 16 magic numbers of skippable frames, in zstd and lz4.
	skippableMagic = 0x184D2A50
)

// frameFormat is what frameReader needs to know of a codec's frames.
type frameFormat interface {
	// next looks at the frame at the front of br, consuming nothing, and says how to read it:
	// skip > 0 is a skippable frame of that many bytes; size >= 0 a frame to decode whole into
	// size bytes; otherwise a frame to read as a stream. body reads the frame's bytes from br and
	// ends with the frame.
	next(br *bufio.Reader) (skip, size int, body frameBody, err error)
	// whole decodes the frame in into dst, which has room for its content, and writes the
	// content to sum unless it is nil. Goroutine-safe.
	whole(in, dst []byte, sum *xxhash.Digest) ([]byte, error)
	// stream returns a decoder of the one frame body reads.
	stream(body io.Reader) (io.Reader, error)
	close()
	name() string
}

// frameBody reads one frame's bytes; ended reports that it read all of them, checked that the
// frame carries a checksum of its content (else a checksum frame may follow it: sumframe.go).
type frameBody interface {
	io.Reader
	ended() bool
	checked() bool
}

// decoded is one piece of the output, in order: a frame decoded whole (data, or err, once ready
// closes), or a frame to read as a stream (stream), after which the reader closes release.
type decoded struct {
	data    []byte
	err     error
	ready   chan struct{}
	stream  io.Reader
	release chan struct{}
}

// frameReader decodes a stream of frames; see the file comment.
type frameReader struct {
	format frameFormat
	out    chan *decoded
	stop   chan struct{}
	done   chan struct{} // closed when the producer has returned
	cur    *decoded
	off    int
	err    error
	once   sync.Once

	// Buffers for frames (freeIn) and their output (freeOut), mapped outside Go's heap so that
	// Close gives their memory back at once (a heap would keep it after a restore, counted
	// against the next dump). Each kind is reused only as itself: a frame of compressible memory
	// touches a fraction of its buffer, and only pages touched count, so a buffer that once held
	// output would cost the whole of it again as a frame's.
	mu              sync.Mutex
	freeIn, freeOut [][]byte // free buffers of each kind
	mapped          [][]byte
}

// newFrameReader starts decoding r.
func newFrameReader(r io.Reader, format frameFormat) *frameReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	f := &frameReader{format: format, out: make(chan *decoded, framesAhead), stop: make(chan struct{}), done: make(chan struct{})}
	go f.produce(br)
	return f
}

// buf returns an empty buffer with room for n bytes: a free one of pool's (f.freeIn or
// f.freeOut), or one mapped for the reader.
func (f *frameReader) buf(pool *[][]byte, n int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range *pool {
		if cap(b) >= n {
			*pool = slices.Delete(*pool, i, i+1)
			return b[:0], nil
		}
	}
	b, err := unix.Mmap(-1, 0, max(n, frameBufSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map a frame buffer: %w", err)
	}
	f.mapped = append(f.mapped, b)
	return b[:0], nil
}

// giveBack returns a buffer of buf's to pool, the one it came from.
func (f *frameReader) giveBack(pool *[][]byte, b []byte) {
	if cap(b) == 0 {
		return
	}
	f.mu.Lock()
	*pool = append(*pool, b[:0])
	f.mu.Unlock()
}

// send hands d to the reader, or reports that the reader has closed.
func (f *frameReader) send(d *decoded) bool {
	select {
	case f.out <- d:
		return true
	case <-f.stop:
		return false
	}
}

// fail hands the reader err.
func (f *frameReader) fail(err error) {
	d := &decoded{err: err, ready: make(chan struct{})}
	close(d.ready)
	f.send(d)
}

// produce splits the stream into frames and sends their output, in order, into f.out.
func (f *frameReader) produce(br *bufio.Reader) {
	var decoding sync.WaitGroup
	defer func() {
		close(f.out)
		decoding.Wait()
		f.format.close()
		close(f.done)
	}()
	for {
		if _, err := br.Peek(1); err != nil {
			if !errors.Is(err, io.EOF) {
				f.fail(fmt.Errorf("read %s stream: %w", f.format.name(), err))
			}
			return
		}
		skip, size, body, err := f.format.next(br)
		if err != nil {
			f.fail(err)
			return
		}
		if skip > 0 {
			if _, err := br.Discard(skip); err != nil {
				f.fail(fmt.Errorf("%w: skippable %s frame: %w", ErrCorrupt, f.format.name(), unexpected(err)))
				return
			}
			continue
		}
		if size < 0 {
			// Read in turn, by the reader, as a stream.
			s, err := f.format.stream(body)
			if err != nil {
				f.fail(fmt.Errorf("decode %s frame: %w", f.format.name(), err))
				return
			}
			var sum *xxhash.Digest
			if !body.checked() {
				sum = xxhash.New()
				s = summingReader{r: s, sum: sum}
			}
			d := &decoded{stream: s, release: make(chan struct{})}
			if !f.send(d) {
				return
			}
			select {
			case <-d.release:
			case <-f.stop:
				return
			}
			if !body.ended() {
				// The reader failed and said so, or the decoder stopped short of the frame's end.
				f.fail(fmt.Errorf("%w: a %s frame was not decoded to its end", ErrCorrupt, f.format.name()))
				return
			}
			if sum != nil {
				// The reader has handed over the frame's content (release), and hashed it.
				want, ok, err := takeSumFrame(br)
				if err == nil && ok {
					err = sumMismatch(sum.Sum64(), want)
				}
				if err != nil {
					f.fail(fmt.Errorf("%w: %s frame: %w", ErrCorrupt, f.format.name(), err))
					return
				}
			}
			continue
		}
		limit := size + size/64 + 4<<10
		in, err := f.buf(&f.freeIn, limit+1)
		if err == nil {
			in, err = readFrame(body, in, limit)
		}
		var want uint64
		checkWant := false
		if err == nil && !body.checked() {
			want, checkWant, err = takeSumFrame(br)
		}
		if err != nil {
			f.fail(fmt.Errorf("read %s frame: %w", f.format.name(), err))
			return
		}
		d := &decoded{ready: make(chan struct{})}
		if !f.send(d) {
			f.giveBack(&f.freeIn, in)
			return
		}
		decoding.Add(1)
		go func() {
			defer decoding.Done()
			defer close(d.ready)
			defer f.giveBack(&f.freeIn, in)
			// The output's buffer is taken only now, so that a frame waiting for its turn holds
			// only its compressed bytes.
			out, err := f.buf(&f.freeOut, size)
			if err != nil {
				d.err = err
				return
			}
			var sum *xxhash.Digest
			if checkWant {
				sum = xxhash.New()
			}
			d.data, d.err = f.format.whole(in, out, sum)
			if d.err == nil && len(d.data) != size {
				d.err = fmt.Errorf("%d bytes, not the %d it says", len(d.data), size)
			}
			if d.err == nil && checkWant {
				d.err = sumMismatch(sum.Sum64(), want)
			}
			if d.err != nil {
				d.err = fmt.Errorf("%w: decode %s frame: %w", ErrCorrupt, f.format.name(), d.err)
				d.data = out[:0]
			}
		}()
	}
}

// unexpected turns io.EOF in the middle of a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readFrame appends the frame body reads to buf: no more than limit bytes.
func readFrame(body frameBody, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) { // a buffer of buf's has room for limit+1
			return nil, fmt.Errorf("%w: a frame is longer than its content allows (%d bytes)", ErrCorrupt, limit)
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, fmt.Errorf("%w: a frame is longer than its content allows (%d bytes)", ErrCorrupt, limit)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// blockWalker reads one frame's bytes from br, as they are, and ends with the frame: a header of
// head bytes, then blocks, each of which block sizes from its header, until the last.
type blockWalker struct {
	br    *bufio.Reader
	sum   bool // the frame carries a checksum of its content
	head  int  // bytes of the frame header left
	left  int  // bytes of the current block (header included) left
	last  bool
	end   bool
	block func(br *bufio.Reader) (size int, last bool, err error) // the next block's size, its header included
}

func (w *blockWalker) ended() bool { return w.end }

func (w *blockWalker) checked() bool { return w.sum }

func (w *blockWalker) Read(p []byte) (int, error) {
	if w.end {
		return 0, io.EOF
	}
	if w.head == 0 && w.left == 0 {
		size, last, err := w.block(w.br)
		if err != nil {
			return 0, err
		}
		w.left, w.last = size, last
	}
	n := &w.left
	if w.head > 0 {
		n = &w.head
	}
	if len(p) > *n {
		p = p[:*n]
	}
	m, err := w.br.Read(p)
	*n -= m
	if w.head == 0 && w.left == 0 && w.last {
		w.end = true
	}
	if err != nil {
		return m, fmt.Errorf("frame: %w", unexpected(err))
	}
	return m, nil
}

// Read hands over the decoded stream in order.
func (f *frameReader) Read(p []byte) (int, error) {
	for f.err == nil {
		if f.cur != nil && f.cur.stream != nil {
			n, err := f.cur.stream.Read(p)
			if errors.Is(err, io.EOF) {
				close(f.cur.release)
				f.cur = nil
				if n == 0 {
					continue
				}
				return n, nil
			}
			if err != nil {
				f.err = fmt.Errorf("%w: decode %s frame: %w", ErrCorrupt, f.format.name(), err)
				close(f.cur.release)
				f.cur = nil
			}
			return n, f.err
		}
		if f.cur != nil && f.off < len(f.cur.data) {
			n := copy(p, f.cur.data[f.off:])
			f.off += n
			return n, nil
		}
		if f.cur != nil {
			f.giveBack(&f.freeOut, f.cur.data)
		}
		d, ok := <-f.out
		if !ok {
			f.cur, f.err = nil, io.EOF
			break
		}
		if d.stream == nil {
			<-d.ready
			if d.err != nil {
				f.giveBack(&f.freeOut, d.data)
				f.cur, f.err = nil, d.err
				break
			}
		}
		f.cur, f.off = d, 0
	}
	return 0, f.err
}

// Close stops decoding and waits until every goroutine of the reader has returned.
func (f *frameReader) Close() error {
	f.once.Do(func() { close(f.stop) })
	for range f.out { // lets the producer past a send
	}
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	for _, b := range f.mapped {
		err = errors.Join(err, unix.Munmap(b[:cap(b)]))
	}
	f.mapped, f.freeIn, f.freeOut, f.cur = nil, nil, nil, nil
	if f.err == nil || errors.Is(f.err, io.EOF) {
		f.err = errors.New("read from a closed frame reader")
	}
	return err
}
