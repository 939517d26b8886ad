// Package bench holds cedana's end-to-end performance benchmarks. They are not part of `just test`:
// run them with `just bench`, as root, with CRIU installed.
//
// BenchmarkReport is `just bench`: on workloads of CEDANA_BENCH_MIB MiB (default 1024) of random
// and of compressible memory, it measures raw `criu dump`/`criu restore` (default log level),
// compressing the raw dump's images (zstd, lz4), and `cedana dump process --compression
// none|zstd|lz4` and `cedana restore process` of each, in an order rotated per iteration; then the
// dump of a `sleep` by both (alternating) and `cedana --version` and `cedana ps`. It prints one table:
// each figure a median of CEDANA_BENCH_ITER (at least 5) runs with its min..max, its reference, the
// ratio of the medians, the median of each iteration's own ratio ("paired": a drift of the VM's
// speed over the run moves both sides of a pair), and met or MISSED (on the medians' ratio) against
// issue 14's goals. Restores from an archive are also set against their work bound: the raw
// restore, decoding the archive alone in the benchmark's process, and their CPU time (the raw
// restore's counts CRIU's and the restored workload's) over the cores. Peak daemon RSS is the daemon's VmHWM, reset through
// /proc/<pid>/clear_refs before each command, against checkpoint.stream_memory_limit (read from
// `cedana config show`) + 64 MiB.
//
// BenchmarkLazyRestore (also in `just bench`) restores one directory checkpoint per size
// (CEDANA_BENCH_SIZES, 256 MiB, 1 GiB and 4 GiB by default, as memory allows) of a memhog that
// walks its memory (-progress) eagerly and with `--lazy`, alternately, and prints time to running
// (the restore request until the restored memhog's first step; the command's own wall time beside
// it) for both, the time until every page is back for the lazy one, the walk's pace meanwhile and
// afterwards, and issue 15's goal (lazy ≤ 250 ms); every restored memory is checksummed. memhog
// stamps its steps with the wall clock: CRIU restores a tree into a time namespace whose monotonic
// clock goes on from the dump's.
//
// BenchmarkMigrate (also in `just bench`) moves a memhog of each size (CEDANA_BENCH_SIZES, 256 MiB
// and 1 GiB by default) between two daemons on loopback TCP with a token, the destination in a PID
// namespace of its own: with `cedana migrate process`, and by a dump to the S3 server of the tests
// and a restore from it, alternately. It prints the downtime (the memhog's last step on the source
// until its first on the destination) and the bytes the source daemon wrote to disk.
//
// BenchmarkCheckpointRestore dumps and restores a process holding 256 MiB and 1 GiB of touched
// memory (the memhog workload), alternately with `cedana dump/restore process` through a daemon
// it starts and with the raw `criu dump`/`criu restore` CLI, and prints the median wall times and
// the cedana/raw ratios against the 1.05x target.
//
// BenchmarkCompression measures compressed checkpoints of a process holding 1 GiB of random
// (incompressible) memory and of 1 GiB of compressible memory (memhog -mode compressible, a counter
// pattern that fast zstd shrinks ~5.7x and lz4 ~2.6x). For each kind it prints one table with the
// median wall time, CRIU's frozen time (its stats-dump; cedana's stats.frozen), the stored size and
// the ratios of: the raw `criu dump` into a directory; `cedana dump process --compression none`,
// `zstd` and `lz4`; the sequential design (the raw criu dump, then archive.WriteDir of the images
// with the same codec and every core into a file on the same file system, timed together); and
// compressing a raw dump's images alone (archive.WriteDir only). It checks the target: a
// compressed cedana dump takes at most 1.15x max(raw criu dump, compressing alone) and less than
// the sequential design. It also shows where cedana's time goes (its stats.phases) and times the
// restores from the zstd and lz4 archives against `criu restore` of the raw dump. One iteration
// runs six workloads, in an order rotated per iteration; every image directory and archive is
// removed before the next workload starts. The default run (1 GiB, 3 iterations) takes ~5-6
// minutes on 2 cores; `go test ./bench -run '^$' -bench Compression -benchtime 1x -v` runs it
// alone.
//
// Environment:
//
//	CEDANA_BENCH_MIB         BenchmarkReport's workload size in MiB (default 1024; `just bench 128`)
//	CEDANA_BENCH_ITER        timed iterations per size (and data kind) (default 3; BenchmarkReport 5, at least 5)
//	CEDANA_BENCH_WARMUP      untimed warm-up iterations per size (default 1); BenchmarkCompression:
//	                         untimed rounds of every step at 64 MiB before the timed ones
//	CEDANA_BENCH_SIZES       comma-separated sizes in MiB (default 256,1024; BenchmarkCompression 1024)
//	CEDANA_BENCH_KINDS       BenchmarkCompression's and BenchmarkReport's data kinds: random, compressible (default both)
//	CEDANA_BENCH_IMAGE_DIR   parent of the image directories (default a fresh dir in /dev/shm)
//	CEDANA_BENCH_DAEMON_LOG  file that keeps the daemon's log (default: a temporary file)
//	CEDANA_BENCH_VERBOSE     BenchmarkMigrate: print each migration's phases (--stats)
//	CEDANA_BENCH_ENFORCE     "1": fail when a ratio misses the target
//	CEDANA_CRIU_BINARY_PATH  the criu binary used by both sides (default: as the daemon finds it)
package bench
