package imgstream

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Source gives the images of a checkpoint to Serve. Open returns an error wrapping
// fs.ErrNotExist for an image the checkpoint does not have.
type Source interface {
	Open(name string) (io.ReadCloser, error)
}

// DirSource serves images from a directory.
type DirSource string

// Open opens the image name in the directory.
func (d DirSource) Open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), name))
}

// Server serves the images of one `criu restore --stream`.
type Server struct {
	session
	src  Source
	done chan struct{}
	err  error
	sent int64
}

// StartServe listens on ServeSocket in dir and answers CRIU's requests from src, one image at a
// time, in the order CRIU asks. Start CRIU with --stream and the images directory dir after it.
func StartServe(dir string, src Source) (*Server, error) {
	l, err := listen(dir, ServeSocket)
	if err != nil {
		return nil, err
	}
	s := &Server{session: session{l: l}, src: src, done: make(chan struct{})}
	go s.run()
	return s, nil
}

func (s *Server) run() {
	defer close(s.done)
	conn, err := s.accept()
	if err != nil {
		s.err = err
		return
	}
	defer conn.Close()
	for {
		name, err := readRequest(conn)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			err = s.serveOne(conn, name)
		}
		if err != nil {
			s.err = err
			return
		}
	}
}

// serveOne answers one request and copies the image into CRIU's pipe.
func (s *Server) serveOne(conn *net.UnixConn, name string) error {
	r, err := s.src.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return writeReply(conn, false)
	}
	if err != nil {
		return fmt.Errorf("serve image %s to criu: %w", name, err)
	}
	defer r.Close()
	if err := writeReply(conn, true); err != nil {
		return err
	}
	pipe, err := recvPipe(conn, name)
	if err != nil {
		return err
	}
	defer pipe.Close()
	n, err := spliceCopy(pipe, r)
	s.mu.Lock()
	s.sent += n
	s.mu.Unlock()
	if err != nil && !errors.Is(err, unix.EPIPE) {
		return fmt.Errorf("serve image %s to criu: %w", name, err)
	}
	return nil
}

// Wait waits until CRIU has closed its connection and returns the bytes served and the first
// failure of ours.
func (s *Server) Wait() (int64, error) {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, s.err
}

// Abort stops serving (call it when CRIU has exited) and waits for the server to end.
func (s *Server) Abort() {
	s.close()
	<-s.done
}
