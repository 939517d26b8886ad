// Package checkpoint reads and writes a checkpoint directory's metadata file, checkpoint.json,
// whose presence marks the checkpoint as complete.
package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/atomicfile"
)

// MetadataFile is the name of the metadata file inside a checkpoint directory.
const MetadataFile = "checkpoint.json"

// DumpLog and RestoreLog are the names of CRIU's logs inside a checkpoint directory.
const (
	DumpLog    = "dump.log"
	RestoreLog = "restore.log"
)

// ErrNotCheckpoint is wrapped when a directory has no metadata file.
var ErrNotCheckpoint = errors.New("not a cedana checkpoint")

// Write stores ck as dir's metadata, atomically: a reader sees no file or the whole file.
func Write(dir string, ck *daemonv1.Checkpoint) error {
	data, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(ck)
	if err != nil {
		return fmt.Errorf("encode checkpoint metadata: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, MetadataFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write checkpoint metadata: %w", err)
	}
	return nil
}

// Read loads dir's metadata. A directory without it yields an error wrapping ErrNotCheckpoint.
func Read(dir string) (*daemonv1.Checkpoint, error) {
	data, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is %w: it has no %s (an incomplete or foreign dump?)", dir, ErrNotCheckpoint, MetadataFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint metadata: %w", err)
	}
	ck := &daemonv1.Checkpoint{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, ck); err != nil {
		return nil, fmt.Errorf("%s is %w: %s is unreadable: %w", dir, ErrNotCheckpoint, MetadataFile, err)
	}
	return ck, nil
}

// Size is the number of bytes in the regular files under dir.
func Size(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// DumpedPIDs lists the PIDs of the processes CRIU dumped into dir, root first: the tree as it was
// when CRIU froze it, which may differ from what /proc showed a moment before. They come from the
// pstree image (TreePIDs), as for a streamed dump; without a readable one (a dump that stopped
// early), from the core images (core-<pid>.img, which threads have too). It is nil when dir holds
// neither.
func DumpedPIDs(dir string, root int32) []int32 {
	if f, err := os.Open(filepath.Join(dir, PstreeImage)); err == nil {
		pids, err := TreePIDs(f)
		f.Close()
		if err == nil {
			return pids
		}
	}
	list, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var others []int32
	sawRoot := false
	for _, e := range list {
		num, isCore := strings.CutPrefix(e.Name(), "core-")
		num, isImg := strings.CutSuffix(num, ".img")
		if !isCore || !isImg {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 32)
		switch {
		case err != nil:
		case int32(n) == root:
			sawRoot = true
		default:
			others = append(others, int32(n))
		}
	}
	if !sawRoot && len(others) == 0 {
		return nil
	}
	slices.Sort(others)
	return append([]int32{root}, others...)
}
