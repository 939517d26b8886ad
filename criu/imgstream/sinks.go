package imgstream

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cedana/cedana/archive"
)

// DirSink writes the images into a directory, as CRIU itself would (--compression none).
type DirSink struct {
	Dir   string
	files map[string]*os.File // images begun and not finished: chunks of several may interleave
}

// Put appends a chunk to its image file.
func (d *DirSink) Put(name string, n int, last bool, _ int64, r io.Reader) error {
	if d.files == nil {
		d.files = map[string]*os.File{}
	}
	if n == 0 {
		f, err := os.OpenFile(filepath.Join(d.Dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("write streamed image: %w", err)
		}
		d.files[name] = f
	}
	f := d.files[name]
	if f == nil {
		return fmt.Errorf("write streamed image %s: chunk %d without its start", name, n)
	}
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("write streamed image %s: %w", name, err)
	}
	if last {
		err := f.Close()
		delete(d.files, name)
		if err != nil {
			return fmt.Errorf("write streamed image %s: %w", name, err)
		}
	}
	return nil
}

// ArchiveSink adds the images to an archive: a one-chunk image as itself, a longer one in
// parts (archive.PartName), which Extract joins again.
type ArchiveSink struct{ W *archive.Writer }

// Put adds a chunk to the archive.
func (a ArchiveSink) Put(name string, n int, last bool, size int64, r io.Reader) error {
	entry := name
	if n > 0 || !last {
		entry = archive.PartName(name, n)
	}
	_, err := a.W.AddReader(entry, size, r)
	return err
}

// IndexName is the archive entry that lists a streamed checkpoint's images (a JSON array of
// names), right after its metadata: with it, a restore knows at once that an image CRIU asks for
// is not there, instead of reading the whole archive to find out.
const IndexName = "cedana-images.json"

// maxIndexSize bounds the index read from an archive: archive.MaxEntries names of about 40 bytes.
const maxIndexSize = 4 << 20

// EncodeIndex is the content of the index entry for images.
func EncodeIndex(images []string) []byte {
	data, _ := json.Marshal(images) // a []string always encodes
	return data
}

// ReadIndex reads the index if it is the next entry of the archive; an archive without one
// (written through a directory, or by an older cedana) is read to its end for a missing image.
func (s *ArchiveSource) ReadIndex() error {
	base, _, err := s.next()
	if err != nil || base != IndexName {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	s.pending = nil
	data, err := io.ReadAll(io.LimitReader(s.ts, maxIndexSize+1))
	if err != nil {
		return fmt.Errorf("read the checkpoint's image index: %w", err)
	}
	if len(data) > maxIndexSize {
		return fmt.Errorf("%w: the checkpoint's image index %s is larger than %d MiB: not an archive cedana wrote", archive.ErrUnsafeEntry, IndexName, maxIndexSize>>20)
	}
	var names []string
	if json.Unmarshal(data, &names) != nil {
		return fmt.Errorf("the checkpoint's image index %s is not a list of names", IndexName)
	}
	if len(names) > archive.MaxEntries {
		return fmt.Errorf("%w: the checkpoint's image index %s lists %d images, more than an archive may hold (%d, archive.MaxEntries): not an archive cedana wrote",
			archive.ErrUnsafeEntry, IndexName, len(names), archive.MaxEntries)
	}
	s.index = make(map[string]bool, len(names))
	for _, n := range names {
		if err := archive.CheckName(n); err != nil {
			return fmt.Errorf("the checkpoint's image index %s: %w", IndexName, err)
		}
		s.index[n] = true
	}
	return nil
}

// ArchiveSource serves images from an archive read once, front to back: CRIU's request for an
// image reads the archive up to it, keeping the images passed over for later requests (in
// memory up to memLimit bytes, then in files in spillDir). The archive is checked as
// archive.Extract checks one (archive.CheckEntry: names, entry count and size), and an image is
// kept in a file only while spillDir has room for it (archive.CheckRoom).
type ArchiveSource struct {
	ts       *archive.TarStream
	spillDir string
	memLeft  int64
	kept     map[string]*kept
	pending  *tar.Header // read but not yet consumed
	eof      bool
	index    map[string]bool // the images in the archive, when it has an index
	entries  int             // entries read
}

// kept is an image passed over, with its parts joined.
type kept struct {
	mem  bytes.Buffer
	file *os.File
}

// NewArchiveSource reads the archive ts.
func NewArchiveSource(ts *archive.TarStream, memLimit int64, spillDir string) *ArchiveSource {
	if memLimit <= 0 {
		memLimit = DefaultMemoryLimit
	}
	return &ArchiveSource{ts: ts, spillDir: spillDir, memLeft: memLimit, kept: map[string]*kept{}}
}

// next returns the next entry's image name and part number (-1: a whole image).
func (s *ArchiveSource) next() (string, int, error) {
	if s.pending == nil {
		if s.eof {
			return "", 0, io.EOF
		}
		hdr, err := s.ts.Next()
		if errors.Is(err, io.EOF) {
			s.eof = true
			return "", 0, io.EOF
		}
		if err != nil {
			return "", 0, fmt.Errorf("read checkpoint archive: %w", err)
		}
		if err := archive.CheckEntry(hdr, s.entries); err != nil {
			return "", 0, fmt.Errorf("read checkpoint archive: %w", err)
		}
		s.entries++
		s.pending = hdr
	}
	if base, n, ok := archive.ParsePartName(s.pending.Name); ok {
		if err := archive.CheckName(base); err != nil {
			return "", 0, fmt.Errorf("read checkpoint archive: %w", err)
		}
		return base, n, nil
	}
	return s.pending.Name, -1, nil
}

// keep stores the pending entry's body under name.
func (s *ArchiveSource) keep(name string) error {
	k := s.kept[name]
	if k == nil {
		k = &kept{}
		s.kept[name] = k
	}
	size := s.pending.Size
	s.pending = nil
	if k.file == nil && size <= s.memLeft {
		s.memLeft -= size
		_, err := io.Copy(&k.mem, s.ts)
		return err
	}
	need := size
	if k.file == nil {
		need += int64(k.mem.Len()) // what was kept in memory goes into the file too
	}
	if err := archive.CheckRoom(s.spillDir, name, need); err != nil {
		return fmt.Errorf("keep an image from the archive until criu asks for it: %w", err)
	}
	if k.file == nil {
		f, err := os.CreateTemp(s.spillDir, "cedana-restore-spill-*")
		if err != nil {
			return fmt.Errorf("keep an image from the archive for later: %w", err)
		}
		_ = os.Remove(f.Name())
		if _, err := k.mem.WriteTo(f); err != nil {
			f.Close()
			return fmt.Errorf("keep an image from the archive for later: %w", err)
		}
		k.file = f
	}
	if _, err := io.Copy(k.file, s.ts); err != nil {
		return fmt.Errorf("keep an image from the archive for later: %w", err)
	}
	return nil
}

// Open returns the image name: from what was kept, or read on from the archive.
func (s *ArchiveSource) Open(name string) (io.ReadCloser, error) {
	if s.index != nil && !s.index[name] && s.kept[name] == nil {
		return nil, fmt.Errorf("image %s: %w", name, fs.ErrNotExist)
	}
	return s.open(name)
}

// open is Open without the index: WriteAll writes every entry, the files beside CRIU's images
// (dump.log, stats-dump) too.
func (s *ArchiveSource) open(name string) (io.ReadCloser, error) {
	for {
		if k, ok := s.kept[name]; ok {
			base, _, err := s.next()
			if err == nil && base == name {
				if err := s.keep(name); err != nil {
					return nil, err
				}
				continue
			}
			delete(s.kept, name)
			return k.reader()
		}
		base, _, err := s.next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("image %s: %w", name, fs.ErrNotExist)
		}
		if err != nil {
			return nil, err
		}
		if base == name {
			return &partsReader{s: s, name: name}, nil
		}
		if err := s.keep(base); err != nil {
			return nil, err
		}
	}
}

// WriteAll writes every image not served yet into dir, parts joined: for a restore that needs
// the images as files after all.
func (s *ArchiveSource) WriteAll(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for {
		name := ""
		for k := range s.kept {
			name = k
			break
		}
		if name == "" {
			base, _, err := s.next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			name = base
		}
		if err := s.writeOne(root, name); err != nil {
			return err
		}
	}
}

// writeOne writes the image name into root.
func (s *ArchiveSource) writeOne(root *os.Root, name string) error {
	r, err := s.open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("write image %s: %w", name, err)
	}
	return f.Close()
}

func (k *kept) reader() (io.ReadCloser, error) {
	if k.file == nil {
		return io.NopCloser(&k.mem), nil
	}
	if _, err := k.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return k.file, nil
}

// partsReader reads an image straight from the archive, joining its parts and keeping the
// entries between them.
type partsReader struct {
	s     *ArchiveSource
	name  string
	cur   bool // in the body of one of its entries
	whole bool // its one entry was a whole image, not a part
}

func (p *partsReader) Read(b []byte) (int, error) {
	for {
		if p.cur {
			n, err := p.s.ts.Read(b)
			if errors.Is(err, io.EOF) {
				p.cur = false
				if p.whole {
					return n, io.EOF
				}
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		base, part, err := p.s.next()
		if err != nil {
			return 0, err
		}
		if base == p.name {
			p.s.pending = nil
			p.cur, p.whole = true, part == -1
			continue
		}
		if err := p.s.keep(base); err != nil {
			return 0, err
		}
	}
}

func (p *partsReader) Close() error { return nil }
