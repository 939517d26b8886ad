// Package bench holds cedana's end-to-end performance benchmarks. They are not part of `just test`:
// run them with `just bench`, as root, with CRIU installed.
//
// BenchmarkCheckpointRestore dumps and restores a process holding 256 MiB and 1 GiB of touched
// memory (the memhog workload), alternately with `cedana dump/restore process` through a daemon
// it starts and with the raw `criu dump`/`criu restore` CLI, and prints the median wall times and
// the cedana/raw ratios against the 1.05x target.
//
// Environment:
//
//	CEDANA_BENCH_ITER        timed iterations per size (default 3)
//	CEDANA_BENCH_WARMUP      untimed warm-up iterations per size (default 1)
//	CEDANA_BENCH_SIZES       comma-separated sizes in MiB (default 256,1024)
//	CEDANA_BENCH_IMAGE_DIR   parent of the image directories (default a fresh dir in /dev/shm)
//	CEDANA_BENCH_DAEMON_LOG  file that keeps the daemon's log (default: a temporary file)
//	CEDANA_BENCH_ENFORCE     "1": fail when a ratio misses the target
//	CEDANA_CRIU_BINARY_PATH  the criu binary used by both sides (default: as the daemon finds it)
package bench
