//go:build linux

package archive

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// benchHalf is the size of each of the two benchmark files.
const benchHalf = 256 << 20

// benchCheckpoint creates, once per benchmark, a checkpoint of 256 MiB of
// random data and 256 MiB of compressible data in /dev/shm (so that disk
// speed does not matter), removed when the benchmark ends.
func benchCheckpoint(b *testing.B) string {
	b.Helper()
	base := "/dev/shm"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = ""
	}
	dir, err := os.MkdirTemp(base, "cedana-archive-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })

	const chunk = 16 << 20
	for _, file := range []struct {
		name string
		gen  func(i int) []byte
	}{
		{"pages-random.img", func(i int) []byte { return randomBytes(chunk, byte(i)) }},
		{"pages-compressible.img", func(i int) []byte { return compressibleBytes(chunk, uint64(i)) }},
	} {
		f, err := os.Create(filepath.Join(dir, file.name))
		if err != nil {
			b.Fatal(err)
		}
		for i := range benchHalf / chunk {
			if _, err := f.Write(file.gen(i)); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchWorkers are the worker counts compared: one core and all of them.
func benchWorkers() []int {
	if n := runtime.NumCPU(); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

// benchWriteCase is one archive writer configuration of BenchmarkWrite.
type benchWriteCase struct {
	name  string
	codec Codec
	// comp, if set, builds the compressor instead of NewWriter.
	comp func(w io.Writer, workers int) (compressor, error)
}

func benchWriteCases() []benchWriteCase {
	var cases []benchWriteCase
	for _, c := range archiveCodecs {
		cases = append(cases, benchWriteCase{name: string(c), codec: c})
	}
	// The zstd stream encoder mode that NewWriter does not use, for
	// comparison.
	alt := !zstdConcurrentBlocks
	name := "zstd-no-concurrent-blocks"
	if alt {
		name = "zstd-concurrent-blocks"
	}
	cases = append(cases, benchWriteCase{name: name, codec: Zstd, comp: func(w io.Writer, workers int) (compressor, error) {
		return newZstdWriter(w, workers, alt)
	}})
	return cases
}

// writeBench archives every file of dir like WriteDir.
func writeBench(b *testing.B, dir string, out io.Writer, tc benchWriteCase, workers int) int64 {
	var a *Writer
	if tc.comp == nil {
		var err error
		if a, err = NewWriter(out, tc.codec, workers); err != nil {
			b.Fatal(err)
		}
	} else {
		comp, err := tc.comp(out, workers)
		if err != nil {
			b.Fatal(err)
		}
		a = newWriterWith(comp, tc.codec)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if _, err := a.AddFile(filepath.Join(dir, e.Name()), e.Name()); err != nil {
			b.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		b.Fatal(err)
	}
	return a.RawBytes()
}

// BenchmarkWrite measures archive creation throughput (MB/s of checkpoint
// data) for every codec with one worker and with all cores. It also reports
// the compression ratio and "cores", the CPU time used per wall-clock time,
// which shows whether a codec really runs on several cores.
func BenchmarkWrite(b *testing.B) {
	dir := benchCheckpoint(b)
	for _, tc := range benchWriteCases() {
		for _, workers := range benchWorkers() {
			b.Run(fmt.Sprintf("%s/workers=%d", tc.name, workers), func(b *testing.B) {
				b.SetBytes(2 * benchHalf)
				out := countingWriter{w: io.Discard, limit: -1}
				cpu0, wall0 := cpuTime(b), time.Now()
				for b.Loop() {
					out.n = 0
					if raw := writeBench(b, dir, &out, tc, workers); raw != 2*benchHalf {
						b.Fatalf("raw = %d", raw)
					}
				}
				cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
				b.ReportMetric(float64(out.n)/float64(2*benchHalf), "ratio")
				b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
			})
		}
	}
}

// BenchmarkExtract measures extraction throughput (MB/s of checkpoint data)
// of the same data, reading the archive from and writing the files to
// /dev/shm.
func BenchmarkExtract(b *testing.B) {
	dir := benchCheckpoint(b)
	work := filepath.Dir(dir)
	for _, c := range archiveCodecs {
		path := dir + "-archive" + c.Extension()
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.Remove(path) })
		if _, err := WriteDir(dir, f, c, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		for _, workers := range benchWorkers() {
			b.Run(fmt.Sprintf("%s/workers=%d", c, workers), func(b *testing.B) {
				b.SetBytes(2 * benchHalf)
				var cpu time.Duration
				var wall time.Duration
				for b.Loop() {
					b.StopTimer()
					out, err := os.MkdirTemp(work, "cedana-archive-bench-out-")
					if err != nil {
						b.Fatal(err)
					}
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					cpu0, wall0 := cpuTime(b), time.Now()
					if _, err := Extract(f, out, workers); err != nil {
						b.Fatal(err)
					}
					cpu, wall = cpu+cpuTime(b)-cpu0, wall+time.Since(wall0)
					b.StopTimer()
					f.Close()
					os.RemoveAll(out)
					b.StartTimer()
				}
				b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
			})
		}
	}
}
