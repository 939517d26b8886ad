package imgstream

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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
	Images     int   // images CRIU sent
	Bytes      int64 // bytes in them
	PeakMemory int64 // most bytes held in memory at once
	Spilled    int64 // bytes that waited in the spill file
}

// Capture receives the images of one `criu dump --stream`.
type Capture struct {
	session
	spool *spool
	sink  Sink

	queue   chan item
	drained chan struct{} // closed when CRIU has handed over everything
	done    chan struct{} // closed when the sink has taken everything
	err     error         // the first failure of ours
	stats   Stats
}

type item struct {
	name string
	n    int
	last bool
	c    chunk
}

// StartCapture listens on CaptureSocket in dir for CRIU's connection. Images wait in memory up
// to memLimit bytes (<= 0: DefaultMemoryLimit), beyond that in a spill file in spillDir.
// Start CRIU with --stream and the images directory dir after it.
func StartCapture(dir string, memLimit int64, spillDir string, sink Sink) (*Capture, error) {
	l, err := listen(dir, CaptureSocket)
	if err != nil {
		return nil, err
	}
	c := &Capture{
		session: session{l: l}, spool: newSpool(memLimit, spillDir), sink: sink,
		queue: make(chan item, 1<<16), drained: make(chan struct{}), done: make(chan struct{}),
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

// drain reads one image's pipe to its end into chunks, in memory while the spool allows.
func (c *Capture) drain(name string, pipe *os.File) error {
	var scratch []byte
	for n := 0; ; n++ {
		var ch chunk
		var got int
		var err error
		if buf := c.spool.buffer(); buf != nil {
			got, err = io.ReadFull(pipe, buf)
			ch.data = buf[:got]
		} else {
			if scratch == nil {
				scratch = make([]byte, 1<<20)
			}
			for got < ChunkSize && err == nil {
				var m int
				m, err = io.ReadFull(pipe, scratch[:min(len(scratch), ChunkSize-got)])
				if m > 0 {
					if serr := c.spool.spillTo(&ch, scratch[:m]); serr != nil {
						return serr
					}
				}
				got += m
			}
		}
		last := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !last {
			c.spool.release(ch)
			return fmt.Errorf("read image %s from criu: %w", name, err)
		}
		c.queue <- item{name: name, n: n, last: last, c: ch}
		if last {
			return nil
		}
	}
}

// consume hands the chunks to the sink; after a failure it only frees them, so CRIU never waits.
func (c *Capture) consume() {
	defer close(c.done)
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

// Drained waits until CRIU has closed its connection and every image pipe has reached its end:
// from then on CRIU waits for nothing of ours.
func (c *Capture) Drained() <-chan struct{} { return c.drained }

// Wait waits until the sink has taken every image, and returns the first failure, if any. It
// does not say whether the images are complete: only CRIU's exit status does.
func (c *Capture) Wait() (Stats, error) {
	<-c.done
	c.spool.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.PeakMemory, st.Spilled = c.spool.peak, c.spool.spilled
	return st, c.err
}

// Abort stops waiting for CRIU (call it when CRIU has exited, to end a capture it never
// connected to) and returns once everything received is released.
func (c *Capture) Abort() {
	c.close()
	<-c.done
	c.spool.close()
}
