// Package storagetest runs a real S3 server for tests: versitygw, on a free local port, backed
// by a temporary directory. It does not import package storage, whose own tests use it too.
package storagetest

import (
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
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/cedana/cedana/internal/testutil"
)

// Bucket is the bucket Start creates.
const Bucket = "cedana-test"

// Server is a versitygw S3 server run by a test, which the test can kill and start again
// (fault injection). Create it with Start.
type Server struct {
	// Endpoint is the server's host:port; it speaks plain http and takes path-style bucket names.
	Endpoint string
	// Region is the server's region.
	Region string
	// AccessKey and SecretKey are the credentials it accepts.
	AccessKey, SecretKey string
	// Bucket is the bucket created in it, Bucket.
	Bucket string
	// Dir is the directory the server keeps its buckets, objects and unfinished uploads in.
	Dir string

	t   testing.TB
	bin string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *testutil.Buffer
}

// Test server credentials.
const testAccess, testSecret = "cedana-test-access", "cedana-test-secret"

// Start starts a versitygw S3 server on a free local port, backed by a temporary directory,
// creates Bucket in it and stops the server when the test ends. Without versitygw (see
// hack/install-versitygw.sh) the test is skipped, or fails when the CI variable is "true".
func Start(t testing.TB) *Server {
	t.Helper()
	bin := findVersitygw()
	if bin == "" {
		testutil.SkipUnlessCI(t, "versitygw not found in $CEDANA_TOOLS_BIN, /opt/cedana/bin or PATH; run hack/install-versitygw.sh")
	}
	s := &Server{Region: "us-east-1", AccessKey: testAccess, SecretKey: testSecret, Bucket: Bucket, Dir: t.TempDir(), t: t, bin: bin}
	var lastOut string
	for attempt := 0; attempt < 3; attempt++ { // another process may take the port first
		s.Endpoint = freeAddr(t)
		s.start()
		if err := s.whenUp(func(ctx context.Context, c *minio.Client) error {
			return c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region})
		}); err != nil {
			s.stop()
			lastOut = s.out.String()
			t.Logf("versitygw on %s: %v", s.Endpoint, err)
			continue
		}
		t.Cleanup(s.stop)
		return s
	}
	t.Fatalf("versitygw did not start; its output:\n%s", lastOut)
	return nil
}

// Env is the environment that points the AWS variables cedana reads (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL) at the server.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region, "AWS_ENDPOINT_URL=http://" + s.Endpoint,
	}
}

// start starts the server process on s.Endpoint and s.Dir.
func (s *Server) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &testutil.Buffer{Limit: 64 << 10} // the start says why the server failed
	cmd := exec.Command(s.bin, "--access", testAccess, "--secret", testSecret, "--port", s.Endpoint,
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
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	testutil.Stop(s.cmd.Process, s.exited, 5*time.Second)
	s.cmd = nil
}

// Kill kills the server with SIGKILL, as a crash would, and waits until it has exited: its
// connections are reset and its port refuses new ones. Its directory is kept for Restart.
func (s *Server) Kill() {
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
func (s *Server) Freeze() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
}

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
}

func (s *Server) signal(sig syscall.Signal) {
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
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
	if err := s.whenUp(func(ctx context.Context, c *minio.Client) error {
		if ok, err := c.BucketExists(ctx, s.Bucket); err != nil || ok {
			return err
		}
		return errors.New("the bucket is gone")
	}); err != nil {
		s.t.Fatalf("versitygw did not restart on %s: %v; its output:\n%s", s.Endpoint, err, s.out.String())
	}
}

// whenUp retries probe until it succeeds, the server exits, or 20s pass.
func (s *Server) whenUp(probe func(context.Context, *minio.Client) error) error {
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
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
