package imgstream

// A held capture keeps the pages until CRIU is done, as a restore reads them after every other
// image. Into an archive with room at its front (archive.Writer.Reserve), the first encoder
// writes the pages chunks straight into their place instead, while CRIU still dumps, for as long
// as they come in restore order (one pages image after the other, as CRIU dumps one process
// after the other): they then need no memory, no spill file and no writing after CRIU is done.

import (
	"io"

	"github.com/cedana/cedana/archive"
)

// PlacingSink is an EncodingSink that takes pages chunks ahead of the other images.
type PlacingSink interface {
	EncodingSink
	// Placement returns where the pages chunks go ahead, in restore order; nil: nowhere.
	Placement() *archive.Placement
	// Placed counts chunk n of name (size bytes before encoding) as written into the Placement.
	Placed(name string, n int, last bool, size int64)
	// EndFront ends the images before the pages: what comes next follows what was placed.
	EndFront() error
}

// Placement implements PlacingSink.
func (a ArchiveSink) Placement() *archive.Placement { return a.W.Placement() }

// Placed implements PlacingSink.
func (ArchiveSink) Placed(string, int, bool, int64) {}

// EndFront implements PlacingSink.
func (a ArchiveSink) EndFront() error { return a.W.EndFront() }

// placer is the first encoder's way into a PlacingSink's Placement.
type placer struct {
	sink  PlacingSink
	p     *archive.Placement
	image string // the pages image whose chunks are being placed; "": none
	next  int    // its next chunk
	ended bool
	done  chan struct{} // closed once placing has ended: nothing more is placed
}

// newPlacer returns a placer into sink's Placement, nil where it has none.
func newPlacer(sink Sink) *placer {
	ps, ok := sink.(PlacingSink)
	if !ok {
		return nil
	}
	p := ps.Placement()
	if p == nil {
		return nil
	}
	return &placer{sink: ps, p: p, done: make(chan struct{})}
}

// end ends placing.
func (pl *placer) end() {
	if !pl.ended {
		pl.ended = true
		close(pl.done)
	}
}

// fits says whether it is the next pages chunk in restore order: the next chunk of the image
// being placed, or the first of another once that one is complete. The encoder takes the pages
// chunks in the order they came, so an image that began before it is placed whole already.
func (pl *placer) fits(it *item) bool {
	if pl.image == "" {
		return it.n == 0
	}
	return it.name == pl.image && it.n == pl.next
}

// place encodes it into the placement, if placing goes on: false where it did not, which ends
// placing (a chunk out of order, a failure), and it stays as it is.
func (e *encoding) place(enc ChunkEncoder, it *item) bool {
	pl := e.placer
	if pl.ended {
		return false
	}
	if e.c.failed() || !pl.fits(it) {
		pl.end()
		return false
	}
	at := pl.p.Offset()
	err := enc.Encode(pl.p, it.name, it.n, it.last, it.size, e.c.spool.reader(it.c))
	if err == nil {
		err = pl.p.Flush()
	}
	if err != nil {
		if rerr := pl.p.Rewind(at); rerr != nil {
			e.c.fail(rerr) // the archive would go on after a broken frame
		}
		pl.end()
		return false
	}
	it.placed, it.at, it.span = true, at, pl.p.Offset()-at
	pl.sink.Placed(it.name, it.n, it.last, it.size)
	e.in.Add(it.size)
	e.out.Add(it.span)
	e.c.spool.release(it.c)
	it.c = chunk{}
	if it.last {
		pl.image = ""
	} else {
		pl.image, pl.next = it.name, it.n+1
	}
	return true
}

// endFront ends the sink's images before the pages once nothing more is placed.
func (pl *placer) endFront() error {
	<-pl.done
	return pl.sink.EndFront()
}

// section reads a placed chunk's encoding back.
func (pl *placer) section(it *item) io.Reader { return pl.p.Section(it.at, it.span) }

// FrontSizes are the sizes of the chunks of the images that a held capture hands over before the
// pages, once CRIU has handed everything over: what an archive with placed pages needs room for
// before them (archive.Writer.FitFront). With a Placement, it returns once nothing more is placed,
// so that the placed bytes may be moved.
func (c *Capture) FrontSizes() []int64 {
	if !c.hold {
		return nil
	}
	<-c.collect
	if c.enc != nil && c.enc.placer != nil {
		<-c.enc.placer.done
	}
	var sizes []int64
	for _, it := range c.arrived {
		if !isPages(it.name) {
			sizes = append(sizes, it.size)
		}
	}
	return sizes
}

// failed says whether the capture has failed.
func (c *Capture) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}
