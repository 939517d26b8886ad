package imgstream

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
)

// Sink takes the captured images. Put is called from one goroutine, with each image's chunks in
// order: chunk n of name, size bytes read from r. last marks an image's final chunk, so n == 0
// with last set is a whole image; a longer image comes as chunks 0, 1, ... (the final one may be
// empty).
type Sink interface {
	Put(name string, n int, last bool, size int64, r io.Reader) error
}

// Stats describes a capture.
type Stats struct {
	Images       int   // images CRIU sent
	Bytes        int64 // bytes in them
	PeakMemory   int64 // most bytes held in memory at once
	Spilled      int64 // bytes that waited in the spill file
	Encoded      int64 // bytes of the pages encoded while CRIU dumped (see EncodingSink)
	EncodedLater int64 // bytes of the pages encoded after CRIU was done, that found no memory before
	Placed       int64 // bytes of the pages written into their place in the archive as they came (PlacingSink)
}

// Capture receives the images of one `criu dump --stream`.
type Capture struct {
	session
	spool *spool
	sink  Sink

	queue    chan *item
	hold     bool          // keep every image until Flush, then hand them over in restore order
	flush    chan struct{} // closed by Flush or Abort
	flushed  sync.Once
	drained  chan struct{} // closed when CRIU has handed over everything
	done     chan struct{} // closed when the sink has taken everything
	err      error         // the first failure of ours
	stats    Stats
	received int64    // bytes drained from CRIU's pipes
	names    []string // the images CRIU sent, in order
	held     []*item  // a held capture's chunks, in restore order once flushed
	arrived  []*item  // a held capture's chunks in the order they came, set once collected closes
	collect  chan struct{}
	enc      *encoding // encodes a held capture's pages chunks; nil: none
}

type item struct {
	name string
	n    int
	last bool
	size int64
	c    chunk
	// A chunk that is encoded (see EncodingSink): closed once the encoder is done with it,
	// which leaves the encoded chunk in enc (nil: it stays as it is, in c).
	encoded chan struct{}
	enc     []chunk
	later   bool // encoded after CRIU was done
	// A pages chunk written into its place in the archive (PlacingSink): span bytes at offset at
	// of the Placement.
	placed   bool
	at, span int64
}

// StartCapture listens on CaptureSocket in dir for CRIU's connection. Images wait in memory up
// to memLimit bytes (<= 0: DefaultMemoryLimit), beyond that in a spill file in spillDir.
// Start CRIU with --stream and the images directory dir after it.
func StartCapture(dir string, memLimit int64, spillDir string, sink Sink) (*Capture, error) {
	return startCapture(dir, memLimit, spillDir, nil, sink, 0)
}

// StartHeldCapture is StartCapture for an archive that a restore reads front to back: the images
// wait (in memory up to memLimit, then in the spill file) until Flush, which hands them to the
// sink in the order `criu restore` asks for them: every other image in the order CRIU sent it,
// then the pages images (CRIU dumps the pages first and restores them last). Whatever the caller
// adds to the archive before Flush comes first. Memory buffers come from pool (nil: mapped for
// this capture only).
//
// A sink that takes encoded chunks (EncodingSink) gets the pages images' chunks encoded as they
// arrive, while CRIU is still dumping, by up to workers encoders: the capture then keeps what
// they wrote (counted against memLimit like the chunks) instead of the chunks.
func StartHeldCapture(dir string, memLimit int64, spillDir string, pool *Pool, sink Sink, workers int) (*Capture, error) {
	return startCapture(dir, memLimit, spillDir, pool, sink, workers)
}

// startCapture starts a capture; workers == 0 starts a capture that does not hold its images.
func startCapture(dir string, memLimit int64, spillDir string, pool *Pool, sink Sink, workers int) (*Capture, error) {
	hold := workers > 0
	l, err := listen(dir, CaptureSocket)
	if err != nil {
		return nil, err
	}
	c := &Capture{
		session: session{l: l}, spool: newSpool(memLimit, spillDir, pool), sink: sink, hold: hold, flush: make(chan struct{}),
		queue: make(chan *item, 1<<16), drained: make(chan struct{}), done: make(chan struct{}),
		collect: make(chan struct{}),
	}
	if hold {
		c.enc = startEncoding(c, sink, workers)
		if c.enc != nil && c.enc.workers > 1 && c.spool.limit >= reserveLeast {
			c.spool.reserve = aheadBuffers * ChunkSize
		}
	}
	go c.receive()
	go c.consume()
	return c, nil
}

// fail records the first failure.
func (c *Capture) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// receive accepts CRIU's connection, then starts a drainer per image until CRIU closes it.
func (c *Capture) receive() {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		close(c.queue)
		close(c.drained)
	}()
	conn, err := c.accept()
	if err != nil {
		c.fail(err)
		return
	}
	defer conn.Close()
	for {
		name, err := readRequest(conn)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			c.fail(err)
			return
		}
		pipe, err := recvPipe(conn, name)
		if err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		c.stats.Images++
		c.names = append(c.names, name)
		c.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pipe.Close()
			if err := c.drain(name, pipe); err != nil {
				c.fail(err)
			}
		}()
	}
}

// drain reads one image's pipe to its end into chunks, in memory while the spool allows. A held
// capture reads each chunk's first headSize bytes apart: a chunk that ends within them (most of
// CRIU's images are a few KiB) is packed beside other small ones (spool.packBytes) instead of
// taking a ChunkSize buffer of its own, as a held capture keeps every image to the end.
func (c *Capture) drain(name string, pipe *os.File) error {
	d := drainer{c: c, name: name, pipe: pipe}
	var head []byte
	if c.hold {
		head = make([]byte, headSize)
	}
	for n := 0; ; n++ {
		var ch chunk
		var got int
		var err error
		if head != nil {
			got, err = io.ReadFull(pipe, head)
			if isEnd(err) {
				if ch, err = c.spool.packBytes(head[:got]); err != nil {
					return err
				}
				err = io.EOF
			} else if err != nil {
				return fmt.Errorf("read image %s from criu: %w", name, err)
			}
		}
		if err == nil {
			ch, got, err = d.fill(head[:got])
		}
		last := isEnd(err)
		if err != nil && !last {
			c.spool.release(ch)
			return err
		}
		if c.hold && last {
			ch = c.spool.pack(ch)
		}
		c.mu.Lock()
		c.received += int64(got)
		c.mu.Unlock()
		c.queue <- &item{name: name, n: n, last: last, size: int64(got), c: ch}
		if last {
			return nil
		}
	}
}

// headSize is how much of a chunk a held capture reads before it takes a buffer for it.
const headSize = 64 << 10

// isEnd says whether err is a pipe's end, met by io.ReadFull.
func isEnd(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }

// drainer reads one image's pipe.
type drainer struct {
	c        *Capture
	name     string
	pipe     *os.File
	noSplice bool   // the kernel cannot splice into the spill file
	scratch  []byte // what is spilled without splice goes through it
}

// fill reads a chunk that begins with prefix (read already) to ChunkSize or the pipe's end (an
// io.EOF or io.ErrUnexpectedEOF error): into a memory buffer while the spool has one, else into
// the spill file. Other errors are ready to return.
func (d *drainer) fill(prefix []byte) (chunk, int, error) {
	var ch chunk
	if buf := d.c.spool.buffer(); buf != nil {
		k := copy(buf, prefix)
		m, err := io.ReadFull(d.pipe, buf[k:])
		ch.data = buf[:k+m]
		if err != nil && !isEnd(err) {
			err = fmt.Errorf("read image %s from criu: %w", d.name, err)
		}
		return ch, k + m, err
	}
	got := len(prefix)
	if got > 0 {
		if err := d.c.spool.spillTo(&ch, prefix); err != nil {
			return ch, got, err
		}
	}
	var err error
	for got < ChunkSize && err == nil {
		var m int
		if !d.noSplice {
			m, err = d.c.spool.spliceFrom(&ch, d.pipe, min(pipeSize, ChunkSize-got))
			if errors.Is(err, errNoSplice) {
				d.noSplice, err = true, nil
			}
		} else {
			if d.scratch == nil {
				d.scratch = make([]byte, pipeSize)
			}
			m, err = io.ReadFull(d.pipe, d.scratch[:min(len(d.scratch), ChunkSize-got)])
			if err != nil && !isEnd(err) {
				err = fmt.Errorf("read image %s from criu: %w", d.name, err)
			}
			if m > 0 {
				if serr := d.c.spool.spillTo(&ch, d.scratch[:m]); serr != nil {
					return ch, got, serr
				}
			}
		}
		got += m
	}
	return ch, got, err
}

// consume hands the chunks to the sink as they come; after a failure it only frees them, so
// CRIU never waits. A held capture keeps them until Flush, then hands them over in restore order
// and keeps them until Release (for Rescue).
func (c *Capture) consume() {
	defer close(c.done)
	if c.hold {
		var held []*item
		for it := range c.queue {
			if c.enc != nil && isPages(it.name) {
				it.encoded = make(chan struct{})
				c.enc.jobs <- it
			}
			held = append(held, it)
		}
		c.arrived = held
		close(c.collect)
		if c.enc != nil {
			close(c.enc.jobs)
		}
		<-c.flush
		c.held = restoreOrder(held)
		c.mu.Lock()
		aborted := c.err != nil
		c.mu.Unlock()
		if !aborted {
			if err := c.putAll(c.sink, true); err != nil {
				c.fail(err)
			}
		}
		return
	}
	failed := false
	for it := range c.queue {
		size := it.c.size()
		if !failed {
			if err := c.sink.Put(it.name, it.n, it.last, size, c.spool.reader(it.c)); err != nil {
				c.fail(err)
				failed = true
			}
		}
		c.spool.release(it.c)
		c.mu.Lock()
		c.stats.Bytes += size
		c.mu.Unlock()
	}
}

// Skip ends a held capture without handing its images to the sink (which failed): they stay
// for Rescue until Release.
func (c *Capture) Skip(err error) {
	c.fail(err)
	c.Flush()
	<-c.done
}

// Rescue hands a held capture's images, once more and in the same order, to sink: after the
// capture's own sink failed (an archive that could not be written, an upload that broke off), so
// that nothing CRIU dumped is lost. Call it after Wait and before Release.
func (c *Capture) Rescue(sink Sink) error {
	<-c.done
	return c.putAll(sink, false)
}

// Release frees what a held capture keeps: its memory, its spill file and its way to read back
// the pages it placed in the archive.
func (c *Capture) Release() {
	<-c.done
	if c.enc != nil {
		c.enc.wg.Wait()
		if c.enc.placer != nil {
			_ = c.enc.placer.p.Close()
		}
	}
	for _, it := range c.held {
		c.spool.release(it.c)
	}
	c.held = nil
	c.spool.close()
}

// Index is the list of the images CRIU sent, for an archive's index (WriteIndex): complete once
// Drained.
func (c *Capture) Index() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.names)
}

// Image returns a held capture's image name, whole, once CRIU has handed everything over (it
// waits until then): for the chain to read an image it needs, such as the pstree, before the
// archive is written. Read it before Release.
func (c *Capture) Image(name string) (io.Reader, error) {
	if !c.hold {
		return nil, errors.New("only a held capture keeps its images")
	}
	<-c.collect
	var parts []io.Reader
	for _, it := range c.arrived {
		if it.name != name {
			continue
		}
		if it.encoded != nil {
			<-it.encoded
		}
		if it.enc != nil || it.placed {
			return nil, fmt.Errorf("image %s was compressed for the archive: read it from there", name)
		}
		parts = append(parts, c.spool.reader(it.c))
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("criu streamed no image %s: %w", name, fs.ErrNotExist)
	}
	return io.MultiReader(parts...), nil
}

// Received is the number of image bytes CRIU has handed over so far; once Drained, all of them.
func (c *Capture) Received() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}

// restoreOrder sorts held chunks image by image: the other images in the order they began, then
// the pages images in the order they began, each image's chunks in order.
func restoreOrder(held []*item) []*item {
	first := map[string]int{}
	for i, it := range held {
		if _, ok := first[it.name]; !ok {
			first[it.name] = i
		}
	}
	sorted := slices.Clone(held)
	slices.SortStableFunc(sorted, func(a, b *item) int {
		pa, pb := isPages(a.name), isPages(b.name)
		if pa != pb {
			if pa {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(first[a.name], first[b.name]); c != 0 {
			return c
		}
		return cmp.Compare(a.n, b.n)
	})
	return sorted
}

// isPages says whether name is a pages image, which CRIU restores last.
func isPages(name string) bool {
	return strings.HasPrefix(name, "pages-") && strings.HasSuffix(name, ".img")
}

// Flush lets a held capture hand its images to the sink, once CRIU has handed everything over
// (Drained) and the caller has added what must come first.
func (c *Capture) Flush() { c.flushed.Do(func() { close(c.flush) }) }

// Drained waits until CRIU has closed its connection and every image pipe has reached its end:
// from then on CRIU waits for nothing of ours.
func (c *Capture) Drained() <-chan struct{} { return c.drained }

// Wait waits until the sink has taken every image, and returns the first failure, if any. It
// does not say whether the images are complete: only CRIU's exit status does.
func (c *Capture) Wait() (Stats, error) {
	<-c.done
	if !c.hold {
		c.spool.close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.PeakMemory, st.Spilled = c.spool.peak, c.spool.spilled
	return st, c.err
}

// Abort stops waiting for CRIU (call it when CRIU has exited, to end a capture it never
// connected to) and returns once everything received is released.
func (c *Capture) Abort() {
	c.fail(errors.New("capture aborted"))
	c.close()
	c.Flush()
	c.Release()
}
