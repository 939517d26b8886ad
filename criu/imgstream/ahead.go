package imgstream

// Once CRIU is done, a held capture hands its chunks to the sink in restore order. The pages
// chunks that no encoder compressed (random memory, whose encoded copy was not worth spilling a
// second time; see worthSpilling) are compressed by the archive writer as it adds them, on one
// core. A lookahead compresses the next such chunk on another core meanwhile, into memory the
// spool set aside for it (spool.reserve), so that the writer alternates between compressing one
// chunk and appending the frames of the next.

// aheadBuffers is how many ChunkSize buffers the lookahead encodes into: an incompressible
// chunk's frames come out a little larger than the chunk.
const aheadBuffers = 2

// reserveLeast is the least memory limit that sets aside a lookahead's buffers: the drainers
// keep at least twice as much.
const reserveLeast = 3 * aheadBuffers * ChunkSize

// lookahead encodes, on a goroutine of its own, one pages chunk at a time ahead of the writer.
type lookahead struct {
	c    *Capture
	bufs [][]byte // aheadBuffers ChunkSize buffers, from the spool's reserve
	jobs chan *item
	done chan bool // the job's outcome: its frames are in bufs (out), or it stays as it is
	at   *item     // the chunk being encoded; nil: the lookahead is idle
	out  aheadWriter
}

// startLookahead starts a lookahead for sink, or returns nil where there is none: a sink that
// takes no encoded chunks, a capture with one worker or no reserve.
func (c *Capture) startLookahead(sink EncodingSink) *lookahead {
	if sink == nil || c.enc == nil {
		return nil
	}
	bufs := c.spool.takeReserve(aheadBuffers)
	if bufs == nil {
		return nil
	}
	enc, err := sink.NewEncoder()
	if err != nil {
		c.spool.giveBack(bufs)
		return nil
	}
	a := &lookahead{c: c, bufs: bufs, jobs: make(chan *item), done: make(chan bool, 1)}
	go func() {
		for it := range a.jobs {
			a.out.reset(a.bufs)
			a.done <- enc.Encode(&a.out, it.name, it.n, it.last, it.size, c.spool.reader(it.c)) == nil
		}
	}()
	return a
}

// begin starts encoding the first of held that is a pages chunk left as it is, unless the
// lookahead is busy.
func (a *lookahead) begin(held []*item) {
	if a == nil || a.at != nil {
		return
	}
	for _, it := range held {
		if it.encoded == nil {
			continue // not a pages chunk
		}
		if !isClosed(it.encoded) {
			return // an encoder still has it, or the ones after it
		}
		if it.enc == nil && !it.placed {
			a.at = it
			a.jobs <- it
			return
		}
	}
}

// take returns it's encoded frames if the lookahead encoded it; they stay valid until the next
// begin.
func (a *lookahead) take(it *item) ([]chunk, bool) {
	if a == nil || a.at != it {
		return nil, false
	}
	a.at = nil
	if !<-a.done {
		return nil, false
	}
	return a.out.chunks(), true
}

// stop waits for the chunk being encoded, if any, and gives the buffers back to the spool.
func (a *lookahead) stop() {
	if a == nil {
		return
	}
	if a.at != nil {
		<-a.done
	}
	close(a.jobs)
	a.c.spool.giveBack(a.bufs)
}

// aheadWriter writes into fixed buffers, one after the other; errNoRoom once they are full.
type aheadWriter struct {
	bufs [][]byte
	n    []int
}

func (w *aheadWriter) reset(bufs [][]byte) {
	w.bufs, w.n = bufs, make([]int, len(bufs))
}

func (w *aheadWriter) Write(p []byte) (int, error) {
	total := len(p)
	for i := range w.bufs {
		if len(p) == 0 {
			break
		}
		k := copy(w.bufs[i][w.n[i]:], p)
		w.n[i] += k
		p = p[k:]
	}
	if len(p) > 0 {
		return total - len(p), errNoRoom
	}
	return total, nil
}

// chunks is what was written, as the chunks an encodedReader reads.
func (w *aheadWriter) chunks() []chunk {
	var out []chunk
	for i, b := range w.bufs {
		if w.n[i] > 0 {
			out = append(out, chunk{data: b[:w.n[i]]})
		}
	}
	return out
}
