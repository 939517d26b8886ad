package imgstream

// Copying an image into CRIU's pipe with write(2) copies every byte into fresh pipe pages while
// holding the pipe's lock, so CRIU's reads and our writes take turns. vmsplice(2) instead hands
// the pipe references to our own pages: the only copy left is CRIU's read. The pages must not
// change until CRIU has read them; spliceCopy knows when that is from the pipe's capacity (see
// below), without asking the kernel. That holds because whatever CRIU takes from an image pipe
// is copied out of it: read(2) for pages and other images, splice(2) into a regular file for a
// ghost file's contents (criu/files-reg.c), which copies into the page cache too. A tee(2) or a
// splice into another pipe would pass our pages on; CRIU does neither on restore.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// spliceSlot is the size of one buffer of the ring spliceCopy reads into and splices from: a
// whole number of pages, so that each page fills one pipe slot.
const spliceSlot = 256 << 10

// spliceCopy copies r into pipe by vmsplice, reading r into a ring of page-aligned buffers
// mapped for this one copy. Once the copy returns, the pipe may still reference the ring's last
// pages: they stay valid after the unmap, as the kernel keeps a page until its last reference
// goes, and no other copy reuses them.
//
// Why reusing a buffer is safe: a pipe never holds more bytes than its capacity (each slot holds
// at most a page), and every buffer but the last of a copy is spliced whole. A buffer comes back
// round only after the ring's other buffers, capacity/spliceSlot+1 of them, were spliced after it,
// which is more than the capacity: the pipe no longer holds any of its bytes.
func spliceCopy(pipe *os.File, r io.Reader) (int64, error) {
	rc, err := pipe.SyscallConn()
	if err != nil {
		return 0, err
	}
	capacity := 0
	if cerr := rc.Control(func(fd uintptr) { capacity, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }); cerr != nil {
		return 0, cerr
	}
	if err != nil {
		return 0, fmt.Errorf("pipe capacity: %w", err)
	}
	slots := capacity/spliceSlot + 2
	ring, err := unix.Mmap(-1, 0, slots*spliceSlot, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, fmt.Errorf("map splice buffers: %w", err)
	}
	defer func() { _ = unix.Munmap(ring) }()

	var sent int64
	for i := 0; ; i = (i + 1) % slots {
		buf := ring[i*spliceSlot : (i+1)*spliceSlot]
		n, rerr := fill(r, buf)
		if n > 0 {
			if err := vmspliceAll(rc, buf[:n]); err != nil {
				return sent, err
			}
			sent += int64(n)
		}
		if errors.Is(rerr, io.EOF) {
			return sent, nil
		}
		if rerr != nil {
			return sent, rerr
		}
	}
}

// fill reads r until buf is full or r fails, and returns r's error as it is: unlike io.ReadFull,
// which reports a short last read as io.ErrUnexpectedEOF, the error a truncated archive gives.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// vmspliceAll splices all of b into the pipe, waiting while the pipe is full.
func vmspliceAll(rc syscall.RawConn, b []byte) error {
	var err error
	for len(b) > 0 && err == nil {
		werr := rc.Write(func(fd uintptr) bool {
			var n int
			n, err = unix.Vmsplice(int(fd), []unix.Iovec{{Base: &b[0], Len: uint64(len(b))}}, 0)
			if errors.Is(err, unix.EAGAIN) {
				return false
			}
			if errors.Is(err, unix.EINTR) {
				err = nil
			}
			switch {
			case n > 0:
				b = b[n:]
			case err == nil:
				err = io.ErrShortWrite // a blocking vmsplice moves something or fails
			}
			return true
		})
		if werr != nil {
			return werr
		}
	}
	return err
}
