// Package imgstream is cedana's side of CRIU's image-streamer protocol (`criu --stream`).
//
// With --stream, CRIU opens no image files: it connects to a unix socket in the images
// directory (streamer-capture.sock on dump, streamer-serve.sock on restore) and, for every
// image, sends the image's name as an img_streamer_request_entry (a little-endian uint32 length
// and the protobuf message, as CRIU's pb_write_one writes it) followed by one end of a pipe passed
// with SCM_RIGHTS (one dummy byte of data). On restore the streamer first answers with an
// img_streamer_reply_entry saying whether the image exists. CRIU writes (dump) or reads (restore)
// the image through the pipe and closes it; it closes the socket when it needs no more images.
//
// [Capture] drains every pipe into memory (spilling to a file beyond a bound) as fast as CRIU
// writes, so CRIU never waits for the compressor or the uploader; a single consumer then hands
// the images, in chunks, to a [Sink]. [Serve] answers CRIU's requests from a [Source].
package imgstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// The socket names CRIU connects to (criu/img-streamer.c).
const (
	CaptureSocket = "streamer-capture.sock"
	ServeSocket   = "streamer-serve.sock"
)

// maxRequest bounds a request message: it only holds a file name.
const maxRequest = 64 << 10

// listen creates the socket name in dir for CRIU to connect to.
func listen(dir, name string) (*net.UnixListener, error) {
	path := filepath.Join(dir, name)
	_ = os.Remove(path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen for criu's image streamer connection: %w", err)
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}

// readRequest reads one request and returns the image name; io.EOF means CRIU is done.
func readRequest(c *net.UnixConn) (string, error) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return "", fmt.Errorf("criu's image request cut short: %w", err)
		}
		return "", err
	}
	n := binary.LittleEndian.Uint32(size[:])
	if n > maxRequest {
		return "", fmt.Errorf("criu's image request of %d bytes is too large: is a criu of the same protocol connected?", n)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(c, msg); err != nil {
		return "", fmt.Errorf("read criu's image request: %w", err)
	}
	return parseName(msg)
}

// parseName decodes an img_streamer_request_entry: field 1, the file name.
func parseName(msg []byte) (string, error) {
	name, found := "", false
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return "", fmt.Errorf("decode criu's image request: %w", protowire.ParseError(n))
		}
		msg = msg[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(msg)
			if m < 0 {
				return "", fmt.Errorf("decode criu's image request: %w", protowire.ParseError(m))
			}
			name, found, msg = string(v), true, msg[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, msg)
		if m < 0 {
			return "", fmt.Errorf("decode criu's image request: %w", protowire.ParseError(m))
		}
		msg = msg[m:]
	}
	if !found || name == "" || name != filepath.Base(name) {
		return "", fmt.Errorf("criu asked for an invalid image name %q", name)
	}
	return name, nil
}

// writeReply sends an img_streamer_reply_entry saying whether the image exists.
func writeReply(c *net.UnixConn, exists bool) error {
	msg := protowire.AppendTag(nil, 1, protowire.VarintType)
	msg = protowire.AppendVarint(msg, protowire.EncodeBool(exists))
	buf := binary.LittleEndian.AppendUint32(nil, uint32(len(msg)))
	if _, err := c.Write(append(buf, msg...)); err != nil {
		return fmt.Errorf("answer criu's image request: %w", err)
	}
	return nil
}

// recvPipe receives the pipe end CRIU passes after a request.
func recvPipe(c *net.UnixConn, name string) (*os.File, error) {
	oob := make([]byte, unix.CmsgSpace(4*4))
	var dummy [1]byte
	_, oobn, _, _, err := c.ReadMsgUnix(dummy[:], oob)
	if err != nil {
		return nil, fmt.Errorf("receive criu's pipe for %s: %w", name, err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive criu's pipe for %s: %w", name, err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("criu passed %d file descriptors for %s, want one pipe", len(fds), name)
	}
	// A pipe holds 64 KiB by default: CRIU and we would take turns every 64 KiB. 1 MiB (the
	// unprivileged maximum, fs.pipe-max-size) lets both run; failing that, the default does.
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	return os.NewFile(uintptr(fds[0]), name), nil
}

// pipeSize is the capacity asked for CRIU's pipes.
const pipeSize = 1 << 20

// session is the listener CRIU connects to and, once it has, its one connection.
type session struct {
	l    *net.UnixListener
	mu   sync.Mutex
	conn *net.UnixConn
}

// accept waits for CRIU's connection and stops listening; close (when CRIU exits first) ends the
// wait.
func (s *session) accept() (*net.UnixConn, error) {
	c, err := s.l.AcceptUnix()
	s.l.Close()
	if err != nil {
		return nil, fmt.Errorf("wait for criu to connect to the image streamer: %w", err)
	}
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	return c, nil
}

// close stops listening and closes CRIU's connection.
func (s *session) close() {
	s.l.Close()
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.mu.Unlock()
}
