// Where an archive goes: a local file, renamed into place once complete, or an S3 upload.

package live

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cedana/cedana/archive"
	"github.com/cedana/cedana/storage"
)

// Sink is where an archive goes: a local file or an S3 upload.
type Sink interface {
	io.Writer
	// Commit completes the archive and returns its size.
	Commit() (int64, error)
	// Abort discards what was written. It returns the sink's own failure, if it had one
	// before (an upload that failed), and nil otherwise.
	Abort() error
}

var (
	_ Sink           = (*fileSink)(nil)
	_ Sink           = (*uploadSink)(nil)
	_ archive.Placer = (*fileSink)(nil)
)

// PartialArchive is where the archive of a local checkpoint at path is written until it is
// complete, and renamed to path.
func PartialArchive(path string) string { return path + ".partial" }

// fileSink writes PartialArchive(path) and renames it to path on commit. It is an
// archive.Placer: an archive may write its pages ahead of the images before them.
type fileSink struct {
	*bufio.Writer
	f          *os.File
	wb         *writebackFile
	path, temp string
	jumped     bool // Jump moved the file's offset: the archive ends where it is at Commit
}

// writebackFile is the file under a fileSink's buffer. Every writebackEvery bytes, it starts
// writing them to the disk (sync_file_range), so that the fsync of Commit has less left to wait
// for: without, a 1 GiB archive on this VM's disk waited ~0.6 s for it.
type writebackFile struct {
	f        *os.File
	fd       int
	from, at int64 // the offset whose write-back is to start next, and the file's offset
}

// writebackEvery is how many bytes a writebackFile writes before it starts writing them back.
const writebackEvery = 8 << 20

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.at += int64(n)
	if w.at-w.from >= writebackEvery {
		// Best effort: a file system without it writes back at the fsync.
		_ = unix.SyncFileRange(w.fd, w.from, w.at-w.from, unix.SYNC_FILE_RANGE_WRITE)
		w.from = w.at
	}
	return n, err
}

// NewFileSink writes the archive of a local checkpoint at path: PartialArchive(path) until it
// is committed.
func NewFileSink(path string) (Sink, error) {
	temp := PartialArchive(path)
	f, err := os.OpenFile(temp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	wb := &writebackFile{f: f, fd: int(f.Fd())}
	return &fileSink{Writer: bufio.NewWriterSize(wb, 1<<20), f: f, wb: wb, path: path, temp: temp}, nil
}

// Jump implements archive.Placer.
func (s *fileSink) Jump(off int64) error {
	if err := s.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	s.wb.from, s.wb.at = off, off
	s.jumped = true
	return nil
}

// Region implements archive.Placer: a duplicate of the partial file's descriptor. Not the file
// opened again by its name, which whoever may write the checkpoint's directory could have
// replaced (with a link to a file only root may write) since it was created.
func (s *fileSink) Region() (archive.Region, error) {
	fd, err := unix.FcntlInt(s.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate the archive's descriptor: %w", err)
	}
	return os.NewFile(uintptr(fd), s.temp), nil
}

// Commit implements Sink: it syncs the file and renames it into place.
func (s *fileSink) Commit() (int64, error) {
	err := s.Flush()
	if err == nil && s.jumped {
		// Cut off what a placement wrote beyond the archive's end and did not keep.
		var end int64
		if end, err = s.f.Seek(0, io.SeekCurrent); err == nil {
			err = s.f.Truncate(end)
		}
	}
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.temp, s.path)
	}
	if err != nil {
		os.Remove(s.temp)
		if errors.Is(err, unix.ENOSPC) {
			return 0, fmt.Errorf("write archive %s: the disk is full: %w", s.path, err)
		}
		return 0, fmt.Errorf("write archive %s: %w", s.path, err)
	}
	info, err := os.Stat(s.path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// Abort implements Sink: it removes the partial file.
func (s *fileSink) Abort() error {
	s.f.Close()
	os.Remove(s.temp)
	return nil
}

// uploadSink streams the archive to S3 as it is written: nothing is staged locally.
type uploadSink struct {
	*bufio.Writer
	pw     *io.PipeWriter
	loc    storage.Location
	result chan uploadResult
}

type uploadResult struct {
	n   int64
	err error
}

// NewUploadSink streams the archive to the object at loc of the S3 endpoint cfg names; ctx
// bounds the upload.
func NewUploadSink(ctx context.Context, cfg storage.Config, loc storage.Location) (Sink, error) {
	client, err := storage.New(cfg)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	s := &uploadSink{Writer: bufio.NewWriterSize(pw, 1<<20), pw: pw, loc: loc, result: make(chan uploadResult, 1)}
	go func() {
		n, err := client.Upload(ctx, loc, pr)
		pr.CloseWithError(err) // unblocks the writer if the upload failed first
		s.result <- uploadResult{n, err}
	}()
	return s, nil
}

// Commit implements Sink: it ends the upload and waits for S3 to complete the object.
func (s *uploadSink) Commit() (int64, error) {
	err := s.Flush()
	s.pw.CloseWithError(err)
	res := <-s.result
	if err == nil {
		err = res.err
	}
	if err != nil {
		return 0, uploadFailed(err)
	}
	return res.n, nil
}

// Abort implements Sink: it abandons the upload, which leaves no object.
func (s *uploadSink) Abort() error {
	s.pw.CloseWithError(errAborted)
	if res := <-s.result; res.err != nil && !errors.Is(res.err, errAborted) {
		return uploadFailed(res.err)
	}
	return nil
}

// errAborted ends the source of an upload that is abandoned.
var errAborted = errors.New("dump failed")

// uploadFailed says that the upload failed; storage's errors name the endpoint and object.
func uploadFailed(err error) error {
	return fmt.Errorf("the upload failed: %w", err)
}
