// Command memhog is the workload of cedana's checkpoint/restore benchmark: it maps -mib MiB of
// anonymous memory, writes every byte of it with pseudo-random data (so no page is a zero page
// and nothing compresses or deduplicates), creates the -ready file and then sleeps until killed.
package main

import (
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	mib := flag.Int("mib", 256, "MiB of memory to map and touch")
	ready := flag.String("ready", "", "file to create once every page has been written")
	flag.Parse()
	if *mib <= 0 || *ready == "" {
		fmt.Fprintln(os.Stderr, "usage: memhog -mib N -ready FILE")
		os.Exit(2)
	}

	size := *mib << 20
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memhog: mmap %d MiB: %v\n", *mib, err)
		os.Exit(1)
	}
	fill(mem, uint64(time.Now().UnixNano())|1)

	// Plain syscalls rather than os.Create, so the Go runtime's poller stays uninitialized and the
	// process holds no file descriptors besides its stdio.
	fd, err := syscall.Open(*ready, syscall.O_CREAT|syscall.O_WRONLY|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memhog: create %s: %v\n", *ready, err)
		os.Exit(1)
	}
	_, _ = syscall.Write(fd, fmt.Appendf(nil, "%d\n", os.Getpid()))
	_ = syscall.Close(fd)

	for {
		time.Sleep(time.Hour)
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
