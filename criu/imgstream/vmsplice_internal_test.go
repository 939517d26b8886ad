package imgstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// randomBytes is n bytes of seeded noise: a page overwritten by later data never reads the same.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

// testPipe is a pipe of the given capacity; blocking as CRIU's pipes reach the daemon, or
// non-blocking as os.Pipe makes them.
func testPipe(t *testing.T, capacity int, blocking bool) (r, w *os.File) {
	t.Helper()
	var err error
	if blocking {
		var fds [2]int
		require.NoError(t, unix.Pipe2(fds[:], unix.O_CLOEXEC))
		r, w = os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
	} else {
		r, w, err = os.Pipe()
		require.NoError(t, err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	got, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, capacity)
	require.NoError(t, err)
	require.Equal(t, capacity, got)
	return r, w
}

// TestSpliceCopy: what spliceCopy splices arrives whole and unchanged while the reader takes
// small bites, whatever the image's size against the ring's buffers, the pipe's capacity and
// how the source hands its bytes out. Reusing a buffer the pipe still holds shows up as wrong
// bytes (a ring of one buffer fails here).
func TestSpliceCopy(t *testing.T) {
	sizes := []int{0, 1, 4095, spliceSlot - 1, spliceSlot, spliceSlot + 1, 9<<20 + 123}
	sources := map[string]func(io.Reader) io.Reader{
		"whole": func(r io.Reader) io.Reader { return r },
		"half":  iotest.HalfReader,
	}
	for _, size := range sizes {
		for _, capacity := range []int{64 << 10, 1 << 20} {
			for _, blocking := range []bool{true, false} {
				for srcName, src := range sources {
					name := fmt.Sprintf("%d bytes, pipe %d KiB, blocking %v, %s reads", size, capacity>>10, blocking, srcName)
					t.Run(name, func(t *testing.T) {
						want := randomBytes(size, uint64(size))
						pr, pw := testPipe(t, capacity, blocking)
						got := make(chan []byte, 1)
						go func() {
							var buf bytes.Buffer
							bite := make([]byte, 3000) // not a page: reads end mid-page
							for {
								n, err := pr.Read(bite)
								buf.Write(bite[:n])
								if err != nil {
									break
								}
							}
							got <- buf.Bytes()
						}()
						n, err := spliceCopy(pw, src(bytes.NewReader(want)))
						require.NoError(t, err)
						assert.EqualValues(t, size, n)
						require.NoError(t, pw.Close())
						out := <-got
						require.Len(t, out, size)
						assert.True(t, bytes.Equal(want, out), "spliced bytes differ from the source")
					})
				}
			}
		}
	}
}

// TestSpliceCopyReaderGone: when CRIU closes its end, spliceCopy fails with EPIPE (which the
// server takes as CRIU having had enough), and the daemon lives on: vmsplice also raises
// SIGPIPE, which Go ignores for a pipe that is not stdout or stderr.
func TestSpliceCopyReaderGone(t *testing.T) {
	pr, pw := testPipe(t, 64<<10, true)
	require.NoError(t, pr.Close())
	n, err := spliceCopy(pw, bytes.NewReader(randomBytes(1<<20, 1)))
	require.ErrorIs(t, err, unix.EPIPE)
	assert.Zero(t, n)
}

// TestSpliceCopySourceFails: a source that fails (a truncated archive reads as
// io.ErrUnexpectedEOF) fails the copy with its error, after what it did give, wherever in a
// buffer it fails; only io.EOF is the image's end.
func TestSpliceCopySourceFails(t *testing.T) {
	for _, size := range []int{0, 100, spliceSlot, spliceSlot + 100, 3 * spliceSlot} {
		for _, fail := range []error{io.ErrUnexpectedEOF, errors.New("disk on fire")} {
			t.Run(fmt.Sprintf("%d bytes, then %v", size, fail), func(t *testing.T) {
				want := randomBytes(size, 7)
				pr, pw := testPipe(t, 1<<20, true)
				got := make(chan []byte, 1)
				go func() {
					b, _ := io.ReadAll(pr)
					got <- b
				}()
				n, err := spliceCopy(pw, io.MultiReader(bytes.NewReader(want), iotest.ErrReader(fail)))
				require.ErrorIs(t, err, fail)
				assert.EqualValues(t, size, n)
				require.NoError(t, pw.Close())
				assert.True(t, bytes.Equal(want, <-got), "the bytes before the failure reach the pipe")
			})
		}
	}
}
