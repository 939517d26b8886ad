package storage

import (
	"bytes"
	"context"
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
	bin := findVersitygw()
	if bin == "" {
		msg := "versitygw not found in $CEDANA_TOOLS_BIN, /opt/cedana/bin or PATH; run hack/install-versitygw.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	const access, secret = "cedana-test-access", "cedana-test-secret"
	root := t.TempDir()

	var lastOut string
	for attempt := 0; attempt < 3; attempt++ { // another process may take the port first
		addr := freeAddr(t)
		out := &syncBuffer{}
		cmd := exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "--quiet", "posix", root)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}

		cfg = Config{Endpoint: addr, Region: "us-east-1", AccessKey: access, SecretKey: secret, Insecure: true, PathStyle: true}
		if err := makeBucketWhenUp(cfg, TestBucket, exited); err != nil {
			stop()
			lastOut = out.String()
			t.Logf("versitygw on %s: %v", addr, err)
			continue
		}
		t.Cleanup(stop)
		return cfg, TestBucket
	}
	t.Fatalf("versitygw did not start; its output:\n%s", lastOut)
	return Config{}, ""
}

// makeBucketWhenUp retries creating bucket until the server answers, it exits, or 20s pass.
func makeBucketWhenUp(cfg Config, bucket string, exited <-chan struct{}) error {
	c, err := New(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = c.mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: cfg.Region})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return err
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
