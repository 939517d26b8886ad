package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits on what an archive may hold, applied by Extract and by every reader that takes a
// checkpoint archive apart (criu/imgstream's ArchiveSource), to hostile archives as to any other.
const (
	// MaxEntries is the largest number of entries an archive may hold.
	MaxEntries = 100000
	// MaxEntrySize is the largest file an archive may hold (1 TiB).
	MaxEntrySize = 1 << 40
)

// ErrUnsafeEntry is wrapped by the errors for entries an archive must not hold (bad names,
// links, devices, duplicates, too many or too large entries...).
var ErrUnsafeEntry = errors.New("unsafe archive entry")

// ErrNoRoom is wrapped by the errors for an entry larger than the free space of the directory it
// is to be written into.
var ErrNoRoom = errors.New("no room for archive entry")

// CheckEntry refuses the count-th entry (from 0) of an archive unless it is a regular file with a
// plain name (CheckName) of at most MaxEntrySize bytes among the first MaxEntries entries. The
// error wraps ErrUnsafeEntry and names the entry and the limit.
func CheckEntry(hdr *tar.Header, count int) error {
	name := hdr.Name
	if count >= MaxEntries {
		return fmt.Errorf("%w %q: more than %d entries (archive.MaxEntries): not a checkpoint archive", ErrUnsafeEntry, name, MaxEntries)
	}
	if err := CheckName(name); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("%w %q: %s (only regular files are allowed)", ErrUnsafeEntry, name, typeName(hdr.Typeflag))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("%w %q: sparse file (only regular files are allowed)", ErrUnsafeEntry, name)
		}
	}
	if hdr.Size < 0 || hdr.Size > MaxEntrySize {
		return fmt.Errorf("%w %q: size %d out of range (limit %d, archive.MaxEntrySize): not a checkpoint archive", ErrUnsafeEntry, name, hdr.Size, int64(MaxEntrySize))
	}
	return nil
}

// CheckName refuses a name that is not a plain file name (no directory, no "..", no NUL): the
// error wraps ErrUnsafeEntry.
func CheckName(name string) error {
	if reason := checkName(name); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrUnsafeEntry, name, reason)
	}
	return nil
}

// CheckRoom refuses to write size more bytes of the entry name into dir when its file system has
// less free space (a hostile archive can unpack to far more than it weighs): the error wraps
// ErrNoRoom, and says how much is needed and free. An unknown free space passes.
func CheckRoom(dir, name string, size int64) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return nil //nolint:nilerr // an unknown free space passes: writing will say what is wrong
	}
	if free := int64(fs.Bavail) * fs.Bsize; size > free {
		return fmt.Errorf("%w %q: it needs %d MiB in %s, which has %d MiB free: free space there, or point checkpoint.temp_dir at a larger file system",
			ErrNoRoom, name, (size+(1<<20)-1)>>20, dir, free>>20)
	}
	return nil
}

// checkName returns why name is not a valid flat archive member name, or ""
// if it is valid.
func checkName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case name == "." || name == "..":
		return "name refers to a directory"
	case strings.HasPrefix(name, "/"):
		return "absolute path"
	case strings.IndexByte(name, 0) >= 0:
		return "name contains a NUL byte"
	}
	if strings.Contains(name, "/") {
		for _, elem := range strings.Split(name, "/") {
			if elem == ".." {
				return `path contains a ".." element`
			}
		}
		return "path has a directory component (checkpoint archives are flat)"
	}
	return ""
}

// typeName describes a tar entry type for error messages.
func typeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "regular file"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeDir:
		return "directory"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeCont:
		return "contiguous file"
	case tar.TypeGNUSparse:
		return "sparse file"
	}
	return fmt.Sprintf("entry of type %q", t)
}
