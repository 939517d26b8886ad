package archive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"
	"testing/iotest"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// counter is n bytes that compress, as a memhog's compressible pages (randomBytes: that do not).
func counter(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i/64))
	}
	return b
}

// frameCodec writes frames of one codec: sized says its content size, as EntryEncoder's do.
type frameCodec struct {
	name   string
	sized  func(t testing.TB, w io.Writer, data []byte)
	stream func(t testing.TB, w io.Writer, data []byte)
	format func(t testing.TB) frameFormat
}

var frameCodecs = []frameCodec{
	{
		name: "zstd",
		sized: func(t testing.TB, w io.Writer, data []byte) {
			zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(entryWindow))
			require.NoError(t, err)
			_, err = w.Write(zw.EncodeAll(data, nil))
			require.NoError(t, err)
		},
		stream: func(t testing.TB, w io.Writer, data []byte) {
			zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
			require.NoError(t, err)
			_, err = zw.Write(data)
			require.NoError(t, err)
			require.NoError(t, zw.Close())
		},
		format: func(t testing.TB) frameFormat {
			z, err := newZstdFrames(2)
			require.NoError(t, err)
			return z
		},
	},
	{
		name: "lz4",
		sized: func(t testing.TB, w io.Writer, data []byte) {
			zw := lz4.NewWriter(w)
			require.NoError(t, zw.Apply(lz4.BlockSizeOption(lz4Block), lz4.SizeOption(uint64(len(data)))))
			_, err := zw.Write(data)
			require.NoError(t, err)
			require.NoError(t, zw.Close())
		},
		stream: func(t testing.TB, w io.Writer, data []byte) {
			zw := lz4.NewWriter(w)
			require.NoError(t, zw.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.BlockChecksumOption(true)))
			_, err := zw.Write(data)
			require.NoError(t, err)
			require.NoError(t, zw.Close())
		},
		format: func(testing.TB) frameFormat { return newLZ4Frames() },
	},
}

// frames is a stream of the kinds of frame an archive of c holds, and what it decodes to.
func frames(t testing.TB, c frameCodec) (stream, want []byte) {
	t.Helper()
	var out, plain bytes.Buffer
	add := func(data []byte) { c.sized(t, &out, data); plain.Write(data) }
	streamed := func(data []byte) { c.stream(t, &out, data); plain.Write(data) }
	streamed([]byte("checkpoint.json and other small images"))
	add(counter(16 << 20))
	add(randomBytes(3<<20+17, 1)) // stored blocks: read as a stream
	// A skippable frame: magic, size, payload.
	out.Write(binary.LittleEndian.AppendUint32(nil, skippableMagic+3))
	out.Write(binary.LittleEndian.AppendUint32(nil, 5))
	out.WriteString("skip!")
	add(counter(1 << 20))
	add(nil)
	add(counter(maxParallelFrame + 4096)) // too large to decode whole
	streamed(randomBytes(100<<10, 2))
	add(counter(5000))
	return out.Bytes(), plain.Bytes()
}

// frameEnds returns the offsets in stream where a frame ends: a cut there is a shorter valid
// stream.
func frameEnds(t *testing.T, c frameCodec, stream []byte) map[int]bool {
	ends := map[int]bool{}
	format := c.format(t)
	for off := 0; off < len(stream); {
		skip, _, body, err := format.next(bufioOf(stream[off:]))
		require.NoError(t, err)
		if skip == 0 {
			n, err := io.Copy(io.Discard, body)
			require.NoError(t, err)
			skip = int(n)
		}
		off += skip
		ends[off] = true
	}
	return ends
}

// TestFrameReader: frames decoded side by side come out in order, byte for byte what the
// stream holds, whatever the frame kinds and however the reader reads.
func TestFrameReader(t *testing.T) {
	for _, c := range frameCodecs {
		stream, want := frames(t, c)
		for name, wrap := range map[string]func(io.Reader) io.Reader{
			"whole reads": func(r io.Reader) io.Reader { return r },
			"half reads":  iotest.HalfReader,
		} {
			t.Run(c.name+", "+name, func(t *testing.T) {
				fr := newFrameReader(bytes.NewReader(stream), c.format(t))
				got, err := io.ReadAll(wrap(fr))
				require.NoError(t, err)
				require.NoError(t, fr.Close())
				assert.Equal(t, len(want), len(got))
				assert.True(t, bytes.Equal(want, got), "decoded bytes differ")
			})
		}
	}
}

// TestFrameReaderBroken: a stream cut inside a frame, a flipped byte or trailing bytes that are
// not a frame fail the read with ErrCorrupt or io.ErrUnexpectedEOF; none reads as a clean end.
func TestFrameReaderBroken(t *testing.T) {
	for _, c := range frameCodecs {
		stream, _ := frames(t, c)
		ends := frameEnds(t, c, stream)
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
			t.Run(c.name+", "+name, func(t *testing.T) {
				fr := newFrameReader(bytes.NewReader(data), c.format(t))
				_, err := io.ReadAll(fr)
				require.Error(t, err)
				require.NoError(t, fr.Close())
			})
		}
	}
}

// TestFrameReaderClosedEarly: closing in the middle of a stream stops its goroutines.
func TestFrameReaderClosedEarly(t *testing.T) {
	for _, c := range frameCodecs {
		stream, want := frames(t, c)
		for _, after := range []int{0, 100, 16 << 20, 17 << 20} {
			fr := newFrameReader(bytes.NewReader(stream), c.format(t))
			got := make([]byte, after)
			_, err := io.ReadFull(fr, got)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want[:after], got))
			require.NoError(t, fr.Close())
			<-fr.done
		}
	}
}

// FuzzFrameReader: whatever the input, frameReader never decodes what the codec's own stream
// decoder would not: where it succeeds, that decoder does too, with the same bytes.
func FuzzFrameReader(f *testing.F) {
	for _, c := range frameCodecs {
		var seed bytes.Buffer
		c.sized(f, &seed, counter(300<<10))
		f.Add(c.name == "lz4", bytes.Clone(seed.Bytes()))
		c.sized(f, &seed, randomBytes(70<<10, 3))
		c.stream(f, &seed, counter(1000))
		f.Add(c.name == "lz4", seed.Bytes())
	}
	f.Fuzz(func(t *testing.T, isLZ4 bool, data []byte) {
		c := frameCodecs[0]
		if isLZ4 {
			c = frameCodecs[1]
		}
		fr := newFrameReader(bytes.NewReader(data), c.format(t))
		got, ferr := io.ReadAll(io.LimitReader(fr, 64<<20))
		require.NoError(t, fr.Close())
		if ferr != nil {
			return
		}
		var ref io.Reader
		if isLZ4 {
			ref = lz4.NewReader(bytes.NewReader(data))
		} else {
			zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderConcurrency(1))
			require.NoError(t, err)
			defer zr.Close()
			ref = zr
		}
		want, serr := io.ReadAll(io.LimitReader(ref, 64<<20))
		require.NoError(t, serr, "frameReader decoded %d bytes of a stream the %s decoder refuses", len(got), c.name)
		require.True(t, bytes.Equal(want, got), "frameReader and the %s decoder disagree", c.name)
	})
}

func bufioOf(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// TestFrameRouting: an EntryEncoder chunk that compresses is decoded whole; one that does not,
// though its tar header does (its first block may then count as compressed), is read as a stream.
func TestFrameRouting(t *testing.T) {
	for _, c := range frameCodecs {
		for name, tc := range map[string]struct {
			data  []byte
			whole bool
		}{
			"compressible chunk": {counter(16 << 20), true},
			"random chunk":       {randomBytes(16<<20, 4), false},
		} {
			t.Run(c.name+", "+name, func(t *testing.T) {
				enc, err := NewEntryEncoder(Codec(c.name))
				require.NoError(t, err)
				var b bytes.Buffer
				_, err = enc.Encode(&b, "pages-1.img.part0001", int64(len(tc.data)), bytes.NewReader(tc.data))
				require.NoError(t, err)
				_, size, _, err := c.format(t).next(bufioOf(b.Bytes()))
				require.NoError(t, err)
				assert.Equal(t, tc.whole, size >= 0, "size %d", size)
			})
		}
	}
}

// TestFrameReaderReadAfterClose: the reader's buffers are gone after Close; reading fails.
func TestFrameReaderReadAfterClose(t *testing.T) {
	for _, c := range frameCodecs {
		stream, _ := frames(t, c)
		fr := newFrameReader(bytes.NewReader(stream), c.format(t))
		_, err := io.ReadFull(fr, make([]byte, 100))
		require.NoError(t, err)
		require.NoError(t, fr.Close())
		_, err = fr.Read(make([]byte, 100))
		require.Error(t, err)
	}
}

// decodeCounter wraps a frameFormat and reports each frame it has decoded whole.
type decodeCounter struct {
	frameFormat
	decoded chan struct{}
}

func (d decodeCounter) whole(in, dst []byte, sum *xxhash.Digest) ([]byte, error) {
	defer func() { d.decoded <- struct{}{} }()
	return d.frameFormat.whole(in, dst, sum)
}

// resident is how many bytes of the reader's buffers are in memory.
func resident(t *testing.T, f *frameReader) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, b := range f.mapped {
		vec := make([]byte, (cap(b)+os.Getpagesize()-1)/os.Getpagesize())
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(cap(b)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
		require.Zero(t, errno, "mincore")
		for _, v := range vec {
			n += int(v & 1)
		}
	}
	return n * os.Getpagesize()
}

// TestFrameReaderMemory: with the reader as slow as it can be (every frame it may decode ahead
// decoded before it reads on), a restore of compressible frames holds the output of no more than
// the frames in flight, and of the frames waiting only their compressed bytes.
func TestFrameReaderMemory(t *testing.T) {
	const frameCount, content = 5, 16 << 20
	want := counter(content)
	for _, c := range frameCodecs {
		t.Run(c.name, func(t *testing.T) {
			var stream bytes.Buffer
			for range frameCount {
				c.sized(t, &stream, want)
			}
			compressed := stream.Len() / frameCount
			format := decodeCounter{c.format(t), make(chan struct{}, frameCount)}
			fr := newFrameReader(bytes.NewReader(stream.Bytes()), format)
			defer fr.Close()
			buf := make([]byte, content)
			seen := 0
			for k := 1; k <= frameCount; k++ {
				// Frame k and those the channel holds after it are decoded by now.
				for ; seen < min(k+framesAhead-1, frameCount); seen++ {
					<-format.decoded
				}
				_, err := io.ReadFull(fr, buf)
				require.NoError(t, err)
				require.True(t, bytes.Equal(want, buf), "frame %d decoded wrong", k)
			}
			outputs := (framesAhead + 1) * frameBufSize
			frames := (framesAhead + 2) * (compressed + 64<<10)
			assert.LessOrEqual(t, resident(t, fr), outputs+frames, "%d frames of %d bytes", frameCount, compressed)
		})
	}
}
