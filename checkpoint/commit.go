package checkpoint

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// syncWorkers bounds the images synced at once: enough to keep a disk's queue full.
const syncWorkers = 8

// Commit makes the uncompressed checkpoint in dir complete, and durable: CRIU writes its images
// without syncing them, so Commit syncs every file in dir (a few at a time), then writes ck as
// dir's metadata (Write: a synced temporary file renamed to checkpoint.json) and syncs dir. After a
// crash at any point, dir holds either no checkpoint.json or checkpoint.json and every image,
// never a checkpoint.json beside half-written images. Only the checkpoint's own files are synced,
// not the file system under it (a syncfs would wait for every other writer's data too).
func Commit(dir string, ck *daemonv1.Checkpoint) error {
	if err := syncFiles(dir); err != nil {
		return fmt.Errorf("sync the images in %s: %w", dir, err)
	}
	if err := Write(dir, ck); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// syncFiles fsyncs every regular file under dir and every directory, syncWorkers at a time, and
// returns the first error.
func syncFiles(dir string) error {
	paths := make(chan string)
	errs := make(chan error, syncWorkers)
	var wg sync.WaitGroup
	for range syncWorkers {
		wg.Go(func() {
			var first error
			for p := range paths {
				if err := syncPath(p); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		})
	}
	walkErr := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() || e.IsDir() {
			paths <- p
		}
		return nil
	})
	close(paths)
	wg.Wait()
	close(errs)
	if walkErr != nil {
		return walkErr
	}
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// syncPath fsyncs the file or directory at p.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
