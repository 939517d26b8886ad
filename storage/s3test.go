package storage

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestBucket is the bucket StartTestServer creates.
const TestBucket = "cedana-test"

// StartTestServer starts a versitygw S3 server on a free local port, backed by a temporary
// directory, creates TestBucket in it and stops the server when the test ends. It returns the
// configuration to reach it and the bucket name. Without versitygw (see
// hack/install-versitygw.sh) the test is skipped, or fails when the CI variable is "true".
func StartTestServer(t testing.TB) (cfg Config, bucket string) {
	t.Helper()
	s := NewTestServer(t)
	return s.Config, s.Bucket
}

// TestServer is a versitygw S3 server run by a test, which the test can kill and start again
// (fault injection). Create it with NewTestServer.
type TestServer struct {
	// Config reaches the server.
	Config Config
	// Bucket is the bucket created in it, TestBucket.
	Bucket string
	// Dir is the directory the server keeps its buckets, objects and unfinished uploads in.
	Dir string

	t   testing.TB
	bin string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
}

// Test server credentials.
const testAccess, testSecret = "cedana-test-access", "cedana-test-secret"

// NewTestServer is StartTestServer returning the server itself.
func NewTestServer(t testing.TB) *TestServer {
	t.Helper()
	bin := findVersitygw()
	if bin == "" {
		msg := "versitygw not found in $CEDANA_TOOLS_BIN, /opt/cedana/bin or PATH; run hack/install-versitygw.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &TestServer{Bucket: TestBucket, Dir: t.TempDir(), t: t, bin: bin}
	var lastOut string
	for attempt := 0; attempt < 3; attempt++ { // another process may take the port first
		s.Config = Config{Endpoint: freeAddr(t), Region: "us-east-1", AccessKey: testAccess, SecretKey: testSecret,
			Insecure: true, PathStyle: true}
		s.start()
		if err := s.whenUp(func(ctx context.Context, c *Client) error {
			return c.mc.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Config.Region})
		}); err != nil {
			s.stop()
			lastOut = s.out.String()
			t.Logf("versitygw on %s: %v", s.Config.Endpoint, err)
			continue
		}
		t.Cleanup(s.stop)
		return s
	}
	t.Fatalf("versitygw did not start; its output:\n%s", lastOut)
	return nil
}

// start starts the server process on s.Config.Endpoint and s.Dir.
func (s *TestServer) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &syncBuffer{}
	cmd := exec.Command(s.bin, "--access", testAccess, "--secret", testSecret, "--port", s.Config.Endpoint,
		"--quiet", "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.out = cmd, exited, out
}

// stop ends the server with SIGTERM (SIGKILL after 5s) and waits for it to exit.
func (s *TestServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Kill kills the server with SIGKILL, as a crash would, and waits until it has exited: its
// connections are reset and its port refuses new ones. Its directory is kept for Restart.
func (s *TestServer) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Freeze stops the server with SIGSTOP, as a hung server or a lost network would: its
// connections stay open but it answers nothing. Thaw or Kill ends it.
func (s *TestServer) Freeze() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
}

// Thaw resumes a frozen server (SIGCONT).
func (s *TestServer) Thaw() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
}

func (s *TestServer) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		if err := s.cmd.Process.Signal(sig); err != nil {
			s.t.Fatalf("signal versitygw: %v", err)
		}
	}
}

// Restart starts a killed server again on the same address and directory and waits until it
// answers.
func (s *TestServer) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
	if err := s.whenUp(func(ctx context.Context, c *Client) error { return c.Check(ctx, s.Bucket) }); err != nil {
		s.t.Fatalf("versitygw did not restart on %s: %v; its output:\n%s", s.Config.Endpoint, err, s.out.String())
	}
}

// whenUp retries probe until it succeeds, the server exits, or 20s pass.
func (s *TestServer) whenUp(probe func(context.Context, *Client) error) error {
	c, err := New(s.Config)
	if err != nil {
		return err
	}
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = probe(ctx, c)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.Join(errors.New("versitygw exited"), err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}
func findVersitygw() string {
	var candidates []string
	if dir := os.Getenv("CEDANA_TOOLS_BIN"); dir != "" {
		candidates = append(candidates, filepath.Join(dir, "versitygw"))
	}
	candidates = append(candidates, "/opt/cedana/bin/versitygw")
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return c
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	return ""
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer collects a process's output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 { // keep the start, which says why the server failed
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
