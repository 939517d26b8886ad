package archive

// A zstd or lz4 stream decodes on one core (klauspost/compress pipelines the stages of one zstd
// frame, and pierrec/lz4's concurrent reader, both measured no faster on 2 cores), and a restore
// from a compressible archive waited on it. Cedana's archives are mostly frames of one image chunk
// each (EntryEncoder's, 16 MiB, their size in their header), so frameReader decodes those frames
// side by side, a few ahead of the reader, and hands their output over in order. A frame that does
// not say its size, says more than maxParallelFrame, or starts with a stored block (memory that did
// not compress: decoding it is a copy, and holding it whole would cost memory for nothing) is
// decoded as a stream in turn, with no more memory than the stream decoder's.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

const (
	// maxParallelFrame bounds the content of a frame decoded whole, and so the memory each of
	// the frames in flight holds.
	maxParallelFrame = 32 << 20
	// framesAhead is how many whole frames are decoded ahead of the one being read.
	framesAhead = 2
	// frameBufSize is the size of the buffers frames are decoded into: an EntryEncoder frame's, a
	// 16 MiB chunk and its tar header.
	frameBufSize = 16<<20 + 64<<10
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
	// whole decodes the frame in into dst, which has room for its content. Goroutine-safe.
	whole(in, dst []byte) ([]byte, error)
	// stream returns a decoder of the one frame body reads.
	stream(body io.Reader) (io.Reader, error)
	close()
	name() string
}

// frameBody reads one frame's bytes; ended reports that it read all of them.
type frameBody interface {
	io.Reader
	ended() bool
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
	bufs   sync.Pool     // *[]byte the frames are decoded into
	cur    *decoded
	off    int
	err    error
	once   sync.Once
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

// buf returns a buffer for n bytes of output.
func (f *frameReader) buf(n int) []byte {
	if b, ok := f.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, max(n, frameBufSize))
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
	var inBufs sync.Pool
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
			continue
		}
		var in []byte
		if b, ok := inBufs.Get().(*[]byte); ok {
			in = (*b)[:0]
		}
		in, err = readFrame(body, in, size+size/64+4<<10)
		if err != nil {
			f.fail(fmt.Errorf("read %s frame: %w", f.format.name(), err))
			return
		}
		d := &decoded{ready: make(chan struct{})}
		if !f.send(d) {
			return
		}
		decoding.Add(1)
		go func() {
			defer decoding.Done()
			d.data, d.err = f.format.whole(in, f.buf(size))
			if d.err == nil && len(d.data) != size {
				d.err = fmt.Errorf("%d bytes, not the %d it says", len(d.data), size)
			}
			if d.err != nil {
				d.err = fmt.Errorf("%w: decode %s frame: %w", ErrCorrupt, f.format.name(), d.err)
			}
			inBufs.Put(&in)
			close(d.ready)
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
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 1<<20)
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
	head  int // bytes of the frame header left
	left  int // bytes of the current block (header included) left
	last  bool
	end   bool
	block func(br *bufio.Reader) (size int, last bool, err error) // the next block's size, its header included
}

func (w *blockWalker) ended() bool { return w.end }

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
			b := f.cur.data
			f.bufs.Put(&b)
		}
		d, ok := <-f.out
		if !ok {
			f.cur, f.err = nil, io.EOF
			break
		}
		if d.stream == nil {
			<-d.ready
			if d.err != nil {
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
	return nil
}
