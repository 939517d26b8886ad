package archive

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// A file still being written (CRIU's pages-<n>.img grows for the whole dump) is archived in parts,
// each a tar entry of its own named <name>.part-<NNNN>, NNNN counting from 0000, in order. Extract
// joins consecutive parts back into <name>; with plain tar, `cat <name>.part-* > <name>` does.
const partSep = ".part-"

// PartName is the entry name of part n of the file name.
func PartName(name string, n int) string { return fmt.Sprintf("%s%s%04d", name, partSep, n) }

// ParsePartName splits an entry name made by PartName.
func ParsePartName(entry string) (name string, n int, ok bool) {
	i := strings.LastIndex(entry, partSep)
	if i <= 0 {
		return "", 0, false
	}
	digits := entry[i+len(partSep):]
	if len(digits) != 4 {
		return "", 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 {
		return "", 0, false
	}
	return entry[:i], n, true
}

// AddFilePart adds bytes [offset, offset+size) of the file at path as part n of name. The bytes
// must already be in the file: the writer of a growing file appends, so what lies below its
// current size is final.
func (a *Writer) AddFilePart(path, name string, n int, offset, size int64) (int64, error) {
	entry := PartName(name, n)
	if err := a.ready(entry); err != nil {
		return 0, fmt.Errorf("add %q to archive: %w", entry, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("add %q to archive: %w", entry, err)
	}
	defer f.Close()
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: entry, Size: size, Mode: 0o600, ModTime: time.Now().Truncate(time.Second)}
	copied, err := a.write(hdr, io.NewSectionReader(f, offset, size), "file part shorter than announced")
	if err != nil {
		return copied, fmt.Errorf("add %q to archive: %w", entry, err)
	}
	return copied, nil
}

// AddReader adds an entry name holding the next size bytes of r: a whole file, or a part named by
// PartName. It is how a stream whose total length is not known up front (an image CRIU streams
// through a pipe) goes into an archive chunk by chunk.
func (a *Writer) AddReader(name string, size int64, r io.Reader) (int64, error) {
	if err := a.ready(name); err != nil {
		return 0, fmt.Errorf("add %q to archive: %w", name, err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: time.Now().Truncate(time.Second)}
	n, err := a.write(hdr, io.LimitReader(r, size), "stream shorter than announced")
	if err != nil {
		return n, fmt.Errorf("add %q to archive: %w", name, err)
	}
	return n, nil
}
