package imgstream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// sendImages plays CRIU's side of `criu dump --stream` against the capture socket in dir: each
// image a request and a pipe it writes the image into.
func sendImages(t *testing.T, dir string, images map[string][]byte, order []string) {
	t.Helper()
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: filepath.Join(dir, CaptureSocket), Net: "unix"})
	require.NoError(t, err)
	defer conn.Close()
	for _, name := range order {
		msg := protowire.AppendTag(nil, 1, protowire.BytesType)
		msg = protowire.AppendString(msg, name)
		_, err := conn.Write(append(binary.LittleEndian.AppendUint32(nil, uint32(len(msg))), msg...))
		require.NoError(t, err)
		r, w, err := os.Pipe()
		require.NoError(t, err)
		_, _, err = conn.WriteMsgUnix([]byte{0}, unix.UnixRights(int(r.Fd())), nil)
		r.Close()
		require.NoError(t, err)
		_, err = w.Write(images[name])
		w.Close()
		require.NoError(t, err)
	}
}

// recordSink keeps what it is handed, image by image.
type recordSink map[string]*bytes.Buffer

func (s recordSink) Put(name string, _ int, _ bool, _ int64, r io.Reader) error {
	if s[name] == nil {
		s[name] = &bytes.Buffer{}
	}
	_, err := io.Copy(s[name], r)
	return err
}

// TestHeldCaptureSmallImages checks that a held capture packs small images together: a tree's
// dozens of few-KiB images take no ChunkSize buffer each, so that a memory limit of two chunks
// holds a hundred of them and a pages image as large as a chunk, with nothing spilled, and each
// comes out as it went in.
func TestHeldCaptureSmallImages(t *testing.T) {
	images := map[string][]byte{"pages-1.img": bytes.Repeat([]byte{7}, ChunkSize)}
	order := []string{"pages-1.img"}
	for i := range 100 {
		name := fmt.Sprintf("core-%d.img", i)
		images[name] = bytes.Repeat([]byte{byte(i)}, 100+i*97)
		order = append(order, name)
	}
	images["empty.img"] = nil
	order = append(order, "empty.img")
	dir := t.TempDir()
	sink := recordSink{}
	c, err := StartHeldCapture(dir, 2*ChunkSize, t.TempDir(), nil, sink, 1)
	require.NoError(t, err)
	defer c.Release()
	sendImages(t, dir, images, order)
	<-c.Drained()
	c.Flush()
	st, err := c.Wait()
	require.NoError(t, err)
	assert.Zero(t, st.Spilled, "the small images fit beside the pages")
	assert.LessOrEqual(t, st.PeakMemory, int64(2*ChunkSize))
	for _, name := range order {
		got := sink[name]
		require.NotNil(t, got, name)
		assert.True(t, bytes.Equal(images[name], got.Bytes()), name)
	}
}

// allocated is the disk space f takes.
func allocated(t *testing.T, f *os.File) int64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(int(f.Fd()), &st))
	return st.Blocks * 512
}

// TestSpoolReleaseSpilled checks that releasing a spilled chunk frees its blocks of the spill
// file, and leaves the others' content as it was.
func TestSpoolReleaseSpilled(t *testing.T) {
	s := newSpool(ChunkSize, t.TempDir(), nil)
	defer s.close()
	var a, b chunk
	require.NoError(t, s.spillTo(&a, bytes.Repeat([]byte{1}, 4<<20)))
	require.NoError(t, s.spillTo(&b, bytes.Repeat([]byte{2}, 4<<20)))
	require.GreaterOrEqual(t, allocated(t, s.spill), int64(8<<20))
	s.release(a)
	assert.Less(t, allocated(t, s.spill), int64(5<<20), "a's blocks freed")
	got, err := io.ReadAll(s.reader(b))
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte{2}, 4<<20), got)
}
