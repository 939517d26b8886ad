package archive

// A zstd stream decodes on one core: klauspost/compress pipelines the stages of one frame, which
// measured no faster on 2 cores. Cedana's archives are mostly frames of one image chunk each
// (EntryEncoder's, 16 MiB, their size in the header), so frameReader decodes those frames side by
// side, a few ahead of the reader, and hands their output over in order. A frame that does not
// say its size, says more than maxParallelFrame, or starts with a stored block (memory that did
// not compress: decoding it is a copy, and holding it whole would cost memory for nothing) is
// decoded as a stream in turn, with no more memory than the stream decoder's.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

const (
	// maxParallelFrame bounds the content of a frame decoded whole, and so the memory each of
	// the frames in flight holds.
	maxParallelFrame = 32 << 20
	// framesAhead is how many whole frames are decoded ahead of the one being read.
	framesAhead = 2
	// zstdMagic and the skippable frames' magic range (RFC 8878, 3.1).
	zstdMagic          = 0xFD2FB528
	skippableMagicMask = 0xFFFFFFF0
	skippableMagic     = 0x184D2A50
)

// decoded is one piece of the output, in order: a frame decoded whole (data, or err, once ready
// closes), or a frame to read as a stream (stream), after which the reader closes release.
type decoded struct {
	data    []byte
	err     error
	ready   chan struct{}
	stream  io.Reader
	release chan struct{}
}

// frameReader decodes a zstd stream frame by frame; see the file comment.
type frameReader struct {
	out  chan *decoded
	stop chan struct{}
	done chan struct{} // closed when the producer has returned
	bufs sync.Pool     // *[]byte the frames are decoded into
	cur  *decoded
	off  int
	err  error
	once sync.Once
}

// newFrameReader starts decoding r, with workers frames at once.
func newFrameReader(r io.Reader, workers int) (*frameReader, error) {
	whole, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderMaxMemory(maxParallelFrame),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxWindow(maxZstdWindow),
	)
	if err != nil {
		return nil, err
	}
	stream, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxZstdWindow),
	)
	if err != nil {
		whole.Close()
		return nil, err
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	f := &frameReader{out: make(chan *decoded, framesAhead), stop: make(chan struct{}), done: make(chan struct{})}
	go f.produce(br, whole, stream)
	return f, nil
}

// buf returns a buffer for n bytes of output.
func (f *frameReader) buf(n int) []byte {
	if b, ok := f.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, max(n, frameBufSize))
}

// frameBufSize is the size of the buffers frames are decoded into: an EntryEncoder frame's, a
// 16 MiB chunk and its tar header.
const frameBufSize = 16<<20 + 64<<10

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
func (f *frameReader) produce(br *bufio.Reader, whole, stream *zstd.Decoder) {
	var decoding sync.WaitGroup
	defer func() {
		close(f.out)
		decoding.Wait()
		whole.Close()
		stream.Close()
		close(f.done)
	}()
	var inBufs sync.Pool
	for {
		head, err := br.Peek(zstd.HeaderMaxSize)
		if len(head) == 0 && err != nil {
			if !errors.Is(err, io.EOF) {
				f.fail(fmt.Errorf("read zstd stream: %w", err))
			}
			return
		}
		var h zstd.Header
		if err := h.Decode(head); err != nil {
			f.fail(fmt.Errorf("zstd frame header: %w", err))
			return
		}
		if h.Skippable {
			if _, err := br.Discard(h.HeaderSize + int(h.SkippableSize)); err != nil {
				f.fail(fmt.Errorf("skippable zstd frame: %w", unexpected(err)))
				return
			}
			continue
		}
		fr := &oneFrame{br: br, head: h.HeaderSize, sum: h.HasCheckSum}
		if !h.HasFCS || h.FrameContentSize > maxParallelFrame || !h.FirstBlock.OK || !h.FirstBlock.Compressed {
			// Read in turn, by the reader, as a stream.
			if err := stream.Reset(fr); err != nil {
				f.fail(fmt.Errorf("decode zstd frame: %w", err))
				return
			}
			d := &decoded{stream: stream, release: make(chan struct{})}
			if !f.send(d) {
				return
			}
			select {
			case <-d.release:
			case <-f.stop:
				return
			}
			if !fr.end {
				// The reader failed and said so, or the decoder stopped short of the frame's end.
				f.fail(fmt.Errorf("%w: a zstd frame was not decoded to its end", ErrCorrupt))
				return
			}
			continue
		}
		fcs := int(h.FrameContentSize)
		in := []byte(nil)
		if b, ok := inBufs.Get().(*[]byte); ok {
			in = (*b)[:0]
		}
		in, err = readFrame(fr, in, fcs+fcs/64+4<<10)
		if err != nil {
			f.fail(err)
			return
		}
		d := &decoded{ready: make(chan struct{})}
		if !f.send(d) {
			return
		}
		decoding.Add(1)
		go func() {
			defer decoding.Done()
			d.data, d.err = whole.DecodeAll(in, f.buf(fcs))
			if d.err != nil {
				d.err = fmt.Errorf("%w: decode zstd frame: %w", ErrCorrupt, d.err)
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

// readFrame appends the frame fr reads to buf: no more than limit bytes.
func readFrame(fr *oneFrame, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 1<<20)
		}
		n, err := fr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, fmt.Errorf("%w: a zstd frame is larger than the %d bytes it holds", ErrCorrupt, limit)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// oneFrame reads one zstd frame's bytes from br, as they are, and ends with it: it follows the
// block headers (RFC 8878, 3.1.1.2) to know where the frame ends.
type oneFrame struct {
	br   *bufio.Reader
	head int  // bytes of the frame header left
	sum  bool // a content checksum follows the last block
	left int  // bytes of the current block, or of the checksum, left
	last bool // the current block is the last
	end  bool // all of the frame was read
}

func (o *oneFrame) Read(p []byte) (int, error) {
	if o.end {
		return 0, io.EOF
	}
	if o.head == 0 && o.left == 0 {
		switch {
		case o.last && o.sum:
			o.sum, o.left = false, 4
		default:
			hdr, err := o.br.Peek(3)
			if err != nil {
				return 0, fmt.Errorf("zstd block header: %w", unexpected(err))
			}
			v := uint32(hdr[0]) | uint32(hdr[1])<<8 | uint32(hdr[2])<<16
			o.last = v&1 == 1
			size := int(v >> 3)
			switch (v >> 1) & 3 {
			case 1: // RLE: one byte, repeated
				size = 1
			case 3:
				return 0, fmt.Errorf("%w: a zstd block of the reserved type", ErrCorrupt)
			}
			o.left = 3 + size
		}
	}
	n := &o.left
	if o.head > 0 {
		n = &o.head
	}
	if len(p) > *n {
		p = p[:*n]
	}
	m, err := o.br.Read(p)
	*n -= m
	if o.head == 0 && o.left == 0 && o.last && !o.sum {
		o.end = true
	}
	if err != nil {
		return m, fmt.Errorf("zstd frame: %w", unexpected(err))
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
				f.err = fmt.Errorf("%w: decode zstd frame: %w", ErrCorrupt, err)
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
