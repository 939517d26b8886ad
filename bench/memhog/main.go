// Command memhog is the workload of cedana's checkpoint/restore benchmarks: it maps -mib MiB of
// anonymous memory, writes every 8-byte word of it, creates the -ready file and then sleeps until
// killed. No page is a zero page. With -sum FILE it writes the CRC-32C of its whole memory into
// FILE before -ready, and again into FILE.again at each SIGUSR1: a restored memhog shows that every
// page came back intact (the lazy-restore tests). With -progress FILE it then works instead of
// sleeping: it walks its memory a MiB at a time, reading every page, and counts the steps in FILE
// (see walk), so a benchmark sees when a restored memhog makes its first step and how fast it
// goes while its pages are still being loaded. What it writes depends on -mode:
//
//   - random (the default): xorshift64 output, so nothing compresses or deduplicates;
//   - compressible: a counter pattern, word i holding (i/2+1)*0x10001 (every value twice in a row,
//     like an array of {key, key} pairs), which the archive package's fast zstd level shrinks
//     about 5-6x and its lz4 about 2.5x. (A plain i*0x10001 per word does not compress at all
//     with those levels: no 4-byte sequence repeats, and they leave the literals unencoded.)
package main

import (
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	mib := flag.Int("mib", 256, "MiB of memory to map and touch")
	ready := flag.String("ready", "", "file to create once every page has been written")
	mode := flag.String("mode", "random", "what to write: random (incompressible) or compressible (a counter pattern)")
	sum := flag.String("sum", "", "file to write the memory's CRC-32C into, and into FILE.again at each SIGUSR1")
	progress := flag.String("progress", "", "file to count the steps of a walk over the memory in (see walk)")
	flag.Parse()
	if *mib <= 0 || *ready == "" || (*mode != "random" && *mode != "compressible") {
		fmt.Fprintln(os.Stderr, "usage: memhog -mib N -ready FILE [-mode random|compressible]")
		os.Exit(2)
	}

	size := *mib << 20
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memhog: mmap %d MiB: %v\n", *mib, err)
		os.Exit(1)
	}
	if *mode == "compressible" {
		fillCompressible(mem)
	} else {
		fill(mem, uint64(time.Now().UnixNano())|1)
	}

	if *sum != "" {
		writeSum(mem, *sum)
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				writeSum(mem, *sum+".again")
			}
		}()
	}

	// Plain syscalls rather than os.Create, so the Go runtime's poller stays uninitialized and the
	// process holds no file descriptors besides its stdio.
	fd, err := syscall.Open(*ready, syscall.O_CREAT|syscall.O_WRONLY|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memhog: create %s: %v\n", *ready, err)
		os.Exit(1)
	}
	_, _ = syscall.Write(fd, fmt.Appendf(nil, "%d\n", os.Getpid()))
	_ = syscall.Close(fd)

	if *progress != "" {
		walk(mem, *progress)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// writeSum writes the CRC-32C of mem into path, through a temporary file renamed over it (plain
// syscalls, as for -ready).
func writeSum(mem []byte, path string) {
	sum := crc32.Checksum(mem, crc32.MakeTable(crc32.Castagnoli))
	tmp := path + ".tmp"
	fd, err := syscall.Open(tmp, syscall.O_CREAT|syscall.O_WRONLY|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	if err == nil {
		_, err = syscall.Write(fd, fmt.Appendf(nil, "%08x\n", sum))
		_ = syscall.Close(fd)
	}
	if err == nil {
		err = syscall.Rename(tmp, path)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "memhog: write %s: %v\n", path, err)
		os.Exit(1)
	}
}

// fill writes every 8-byte word of mem with xorshift64 output.
func fill(mem []byte, x uint64) {
	words := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), len(mem)/8)
	for i := range words {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		words[i] = x
	}
}

// fillCompressible writes word i of mem with (i/2+1)*0x10001: a counter that never makes a zero
// page, each value twice in a row so that LZ matches exist.
func fillCompressible(mem []byte) {
	words := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), len(mem)/8)
	for i := range words {
		words[i] = uint64(i/2+1) * 0x10001
	}
}

// Words of the -progress file, which memhog maps shared and updates at every step.
const (
	progSteps     = iota // steps made so far
	progLast             // CLOCK_REALTIME of the last step, ns (see wallClock)
	progResumed          // CLOCK_REALTIME of the first step after a pause (a checkpoint), ns
	progResumedAt        // steps made by then
	progWords
)

// pauseGap is how long between two steps counts as a pause: a step takes microseconds.
const pauseGap = 50 * time.Millisecond

// walk reads the first word of every page of mem, a MiB (one step) at a time and round and
// round, and after each step updates the counters of the file at path (progSteps...): a restored
// memhog's first step after its restore and its pace are visible to another process without
// asking it. CRIU restores the shared mapping of the file, which stays in place.
func walk(mem []byte, path string) {
	fd, err := syscall.Open(path, syscall.O_CREAT|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	if err == nil {
		err = syscall.Ftruncate(fd, int64(os.Getpagesize()))
	}
	var page []byte
	if err == nil {
		page, err = syscall.Mmap(fd, 0, os.Getpagesize(), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		_ = syscall.Close(fd)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "memhog: -progress %s: %v\n", path, err)
		os.Exit(1)
	}
	prog := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(page))), progWords)
	const step = 1 << 20
	pageSize := os.Getpagesize()
	// last is this process's own last step, kept in its memory rather than in the file: a restored
	// memhog compares with the step before its checkpoint, whatever another incarnation of it
	// restored from the same checkpoint wrote into the file since.
	var acc, last uint64
	for off := 0; ; off = (off + step) % len(mem) {
		for p := off; p < min(off+step, len(mem)); p += pageSize {
			acc += *(*uint64)(unsafe.Pointer(&mem[p]))
		}
		now := uint64(wallClock())
		if now > last+uint64(pauseGap) {
			atomic.StoreUint64(&prog[progResumed], now)
			atomic.StoreUint64(&prog[progResumedAt], atomic.LoadUint64(&prog[progSteps]))
		}
		last = now
		atomic.StoreUint64(&prog[progLast], now)
		atomic.AddUint64(&prog[progSteps], 1)
		if acc == 1 { // never: keeps the reads from being optimized away
			fmt.Fprint(os.Stderr, "")
		}
	}
}

// wallClock is CLOCK_REALTIME in ns: the one clock a restored memhog shares with the benchmark.
// CRIU restores a tree into a time namespace whose CLOCK_MONOTONIC (and BOOTTIME) go on from the
// dump's, so that its timers do not jump: a restored process's monotonic clock lags the machine's
// by the time between the dump and the restore.
func wallClock() int64 {
	var ts syscall.Timespec
	_, _, _ = syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 0, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}
