package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/cedana/cedana/config"
)

// listen opens the daemon's listener: a unix socket of mode 0600, or a TCP port, which must be on
// loopback unless a token is configured.
func listen(cfg config.Config) (net.Listener, error) {
	switch cfg.Protocol {
	case config.ProtocolUnix:
		return listenUnix(cfg.Address)
	case config.ProtocolTCP:
		if err := checkTCPAddress(cfg.Address, cfg.Token != ""); err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("listen on tcp %s: %w", cfg.Address, err)
		}
		return ln, nil
	default:
		return nil, fmt.Errorf("unknown protocol %q: use unix or tcp", cfg.Protocol)
	}
}

// checkTCPAddress allows a non-loopback address only with a token.
func checkTCPAddress(address string, haveToken bool) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("tcp address %q: %w (want host:port, e.g. 127.0.0.1:8080)", address, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err == nil && ip.IsLoopback() {
		return nil
	}
	if haveToken {
		return nil
	}
	return fmt.Errorf("refusing to listen on non-loopback address %s without a token: "+
		"anyone who reaches it could checkpoint and restore processes as root; set token in the config (or CEDANA_TOKEN), or listen on 127.0.0.1", address)
}

// listenUnix listens on path with mode 0600. An existing socket is replaced only when no daemon
// answers on it. The socket is created under a temporary name and renamed into place, so it is
// never reachable with a wider mode.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil, fmt.Errorf("another cedana daemon is already serving on %s: stop it first, or use another --address", path)
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on unix socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("restrict socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("install socket %s: %w", path, err)
	}
	return &unixListener{UnixListener: ul, path: path}, nil
}

// unixListener removes its socket file when first closed.
type unixListener struct {
	*net.UnixListener
	path string
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	_ = os.Remove(l.path)
	return err
}
