package archive

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
)

// TarStream is the tar stream inside an archive, decompressed as it is read. Entries are not
// checked as Extract checks them: callers read entries by name and must validate them.
type TarStream struct {
	*tar.Reader
	dec decompressor
}

// OpenTar detects r's codec and returns its tar stream. Close releases the decompressor.
func OpenTar(r io.Reader, workers int) (*TarStream, error) {
	br := bufio.NewReaderSize(r, readBufferSize)
	codec, err := Detect(br)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	dec, err := newDecompressor(br, codec, normWorkers(workers))
	if err != nil {
		return nil, fmt.Errorf("open %s archive: %w: %w", codec, ErrCorrupt, err)
	}
	return &TarStream{Reader: tar.NewReader(dec), dec: dec}, nil
}

// Close releases the decompressor; it does not close the underlying reader.
func (t *TarStream) Close() error { return t.dec.Close() }
