package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/checkpoint-restore/go-criu/v8/crit"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/pstree"
	"golang.org/x/sys/unix"
)

// PstreeImage is the image in which CRIU records the dumped process tree.
const PstreeImage = "pstree.img"

// maxPstreeBytes bounds what TreePIDs reads of a pstree image: about 12 bytes a process, so a
// million processes fit.
const maxPstreeBytes = 16 << 20

// TreePIDs decodes a pstree image (PstreeImage) and returns the PIDs of the processes CRIU
// dumped, root first, then in increasing order; threads are not listed. The same image read
// from a directory or from CRIU's stream gives the same PIDs.
func TreePIDs(img io.Reader) ([]int32, error) {
	// go-criu's decoder reads an *os.File: an anonymous memory file holds the image.
	fd, err := unix.MemfdCreate("pstree.img", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", PstreeImage, err)
	}
	f := os.NewFile(uintptr(fd), PstreeImage)
	defer f.Close()
	n, err := io.Copy(f, io.LimitReader(img, maxPstreeBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", PstreeImage, err)
	case n > maxPstreeBytes:
		return nil, fmt.Errorf("%s is larger than %d MiB: not an image CRIU wrote", PstreeImage, maxPstreeBytes>>20)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read %s: %w", PstreeImage, err)
	}
	decoded, err := crit.New(f, nil, "", false, true).Decode(&pstree.PstreeEntry{})
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", PstreeImage, err)
	}
	if decoded.Magic != "PSTREE" {
		return nil, fmt.Errorf("decode %s: an image of type %s, not PSTREE", PstreeImage, decoded.Magic)
	}
	var pids []int32
	for _, e := range decoded.Entries {
		if p, ok := e.Message.(*pstree.PstreeEntry); ok && p.Pid != nil {
			pids = append(pids, int32(p.GetPid()))
		}
	}
	if len(pids) == 0 {
		return nil, errors.New("decode " + PstreeImage + ": it lists no process")
	}
	slices.Sort(pids[1:])
	return pids, nil
}
