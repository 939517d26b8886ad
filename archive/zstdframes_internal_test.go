package archive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noise is n bytes that do not compress; counter is n bytes that do, as a memhog's pages.
func noise(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func counter(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i/64))
	}
	return b
}

// frames is a zstd stream of the kinds of frame an archive holds, and what it decodes to.
func frames(t testing.TB) (stream, want []byte) {
	t.Helper()
	whole, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(entryWindow))
	require.NoError(t, err)
	var out, plain bytes.Buffer
	add := func(data []byte) { // a frame that says its size (EntryEncoder's)
		out.Write(whole.EncodeAll(data, nil))
		plain.Write(data)
	}
	streamed := func(data []byte) { // a frame that does not (a Writer's)
		zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedFastest))
		require.NoError(t, err)
		_, err = zw.Write(data)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		plain.Write(data)
	}
	streamed([]byte("checkpoint.json and other small images"))
	add(counter(16 << 20))
	add(noise(3<<20+17, 1)) // stored blocks: read as a stream
	// A skippable frame: magic, size, payload.
	out.Write(binary.LittleEndian.AppendUint32(nil, skippableMagic+3))
	out.Write(binary.LittleEndian.AppendUint32(nil, 5))
	out.WriteString("skip!")
	add(counter(1 << 20))
	add(nil)
	add(counter(maxParallelFrame + 4096)) // too large to decode whole
	streamed(noise(100<<10, 2))
	add(counter(5000))
	return out.Bytes(), plain.Bytes()
}

// TestFrameReader: frames decoded side by side come out in order, byte for byte what the
// stream holds, whatever the frame kinds and however the reader reads.
func TestFrameReader(t *testing.T) {
	stream, want := frames(t)
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole reads": func(r io.Reader) io.Reader { return r },
		"half reads":  iotest.HalfReader,
	} {
		t.Run(name, func(t *testing.T) {
			fr, err := newFrameReader(bytes.NewReader(stream), 2)
			require.NoError(t, err)
			got, err := io.ReadAll(wrap(fr))
			require.NoError(t, err)
			require.NoError(t, fr.Close())
			assert.Equal(t, len(want), len(got))
			assert.True(t, bytes.Equal(want, got), "decoded bytes differ")
		})
	}
}

// TestFrameReaderBroken: a stream cut inside a frame, a flipped byte or trailing bytes that are
// not a frame fail the read with ErrCorrupt or io.ErrUnexpectedEOF; none reads as a clean end.
func TestFrameReaderBroken(t *testing.T) {
	stream, _ := frames(t)
	ends := map[int]bool{} // offsets where a frame ends: a cut there is a shorter valid stream
	for off := 0; off < len(stream); {
		var h zstd.Header
		require.NoError(t, h.Decode(stream[off:]))
		if h.Skippable {
			off += h.HeaderSize + int(h.SkippableSize)
		} else {
			fr := &oneFrame{br: bufioOf(stream[off:]), head: h.HeaderSize, sum: h.HasCheckSum}
			n, err := io.Copy(io.Discard, fr)
			require.NoError(t, err)
			off += int(n)
		}
		ends[off] = true
	}
	cases := map[string][]byte{}
	for _, cut := range []int{1, 3, 10, 20, 1000, len(stream) / 3, len(stream) / 2, len(stream) - 5, len(stream) - 1} {
		if !ends[cut] {
			cases[fmt.Sprintf("cut at %d", cut)] = stream[:cut]
		}
	}
	for _, at := range []int{len(stream) / 5, len(stream) / 2, len(stream) - 3} {
		b := bytes.Clone(stream)
		b[at] ^= 0x40
		cases[fmt.Sprintf("byte %d flipped", at)] = b
	}
	cases["trailing bytes"] = append(bytes.Clone(stream), "not a frame"...)
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			fr, err := newFrameReader(bytes.NewReader(data), 2)
			require.NoError(t, err)
			_, err = io.ReadAll(fr)
			require.Error(t, err)
			require.NoError(t, fr.Close())
		})
	}
}

// TestFrameReaderClosedEarly: closing in the middle of a stream stops its goroutines.
func TestFrameReaderClosedEarly(t *testing.T) {
	stream, want := frames(t)
	for _, after := range []int{0, 100, 16 << 20, 17 << 20} {
		fr, err := newFrameReader(bytes.NewReader(stream), 2)
		require.NoError(t, err)
		got := make([]byte, after)
		_, err = io.ReadFull(fr, got)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want[:after], got))
		require.NoError(t, fr.Close())
		<-fr.done
	}
}

// FuzzFrameReader: whatever the input, frameReader never decodes what the zstd stream decoder
// would not: where it succeeds, the stream decoder does too, with the same bytes.
func FuzzFrameReader(f *testing.F) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	require.NoError(f, err)
	f.Add(enc.EncodeAll(counter(300<<10), nil))
	f.Add(append(enc.EncodeAll(counter(1000), nil), enc.EncodeAll(noise(200<<10, 3), nil)...))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := newFrameReader(bytes.NewReader(data), 2)
		require.NoError(t, err)
		got, ferr := io.ReadAll(io.LimitReader(fr, 64<<20))
		require.NoError(t, fr.Close())
		if ferr != nil {
			return
		}
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderConcurrency(1))
		require.NoError(t, err)
		defer zr.Close()
		want, serr := io.ReadAll(io.LimitReader(zr, 64<<20))
		require.NoError(t, serr, "frameReader decoded %d bytes of a stream the zstd decoder refuses", len(got))
		require.True(t, bytes.Equal(want, got), "frameReader and the zstd decoder disagree")
	})
}

func bufioOf(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
