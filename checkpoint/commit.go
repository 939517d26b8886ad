package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// Commit makes the uncompressed checkpoint in dir complete, and durable: CRIU writes its images
// without syncing them, so Commit writes ck as dir's metadata into a temporary file, syncs the file
// system dir is on once (syncfs: the images and that file, however many files CRIU wrote, in one
// journal commit), renames the file to checkpoint.json and syncs dir. After a crash at any point,
// dir holds either no checkpoint.json or checkpoint.json and every image, never a checkpoint.json
// beside half-written images. On tmpfs the syncs cost nothing.
func Commit(dir string, ck *daemonv1.Checkpoint) error {
	data, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(ck)
	if err != nil {
		return fmt.Errorf("encode checkpoint metadata: %w", err)
	}
	if err := commitFile(dir, MetadataFile, append(data, '\n')); err != nil {
		return fmt.Errorf("write checkpoint metadata: %w", err)
	}
	return nil
}

// commitFile writes data to dir/name (mode 0644) through a temporary file, after syncing dir's
// file system, and syncs dir once the file has its name.
func commitFile(dir, name string, data []byte) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync the images in %s: %w", dir, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
