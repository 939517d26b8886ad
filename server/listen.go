package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/cedana/cedana/auth"
	"github.com/cedana/cedana/config"
)

// StartOptions are the settings of one daemon start that the config file does not hold.
type StartOptions struct {
	// Insecure allows TCP on a non-loopback address without TLS: the token crosses the network in
	// clear text.
	Insecure bool
	// ConfigFile is the config.json the configuration was read from ("" if none): a token in it
	// is refused when other users may read the file.
	ConfigFile string
}

// guard is how one daemon authorizes its callers: the policy every request passes through, and the
// TLS configuration of a TCP listener (nil: plain TCP, or a unix socket).
type guard struct {
	policy *auth.Policy
	tls    *tls.Config
	// socketMode is the unix socket's mode: 0600 (root only), or 0666 when groups may use it, in
	// which case the policy checks every caller's credentials.
	socketMode os.FileMode
}

// newGuard checks that cfg's transport is safe to serve and builds its guard: a unix socket for
// root and auth.allowed_groups; TCP only with a token, and only with TLS off loopback unless the
// operator said Insecure.
func newGuard(cfg config.Config, start StartOptions, log *slog.Logger) (guard, error) {
	switch cfg.Protocol {
	case config.ProtocolUnix:
		groups, err := auth.ResolveGroups(cfg.Auth.AllowedGroups)
		if err != nil {
			return guard{}, err
		}
		g := guard{policy: auth.NewUnixPolicy(groups, log), socketMode: 0o600}
		if len(groups) > 0 {
			g.socketMode = 0o666
		}
		return g, nil
	case config.ProtocolTCP:
		if _, err := tcpHost(cfg.Address); err != nil {
			return guard{}, err
		}
		token, err := cfg.DaemonToken(start.ConfigFile, os.Getenv(config.EnvPrefix+"TOKEN") != "")
		if errors.Is(err, config.ErrNoToken) {
			return guard{}, fmt.Errorf("refusing to listen on tcp %s without a token: every local user reaches a TCP port, loopback included, "+
				"and whoever calls the daemon is root; %w", cfg.Address, err)
		}
		if err != nil {
			return guard{}, err
		}
		g := guard{policy: auth.NewTokenPolicy(token, log)}
		if g.tls, err = serverTLS(cfg.TLS); err != nil {
			return guard{}, err
		}
		if g.tls == nil && !start.Insecure && !isLoopback(cfg.Address) {
			return guard{}, fmt.Errorf("refusing to listen on non-loopback address %s without TLS: the token would cross the network in clear text; "+
				"set tls.cert_file and tls.key_file, or pass --insecure if the network is trusted", cfg.Address)
		}
		return g, nil
	default:
		return guard{}, fmt.Errorf("unknown protocol %q: use unix or tcp", cfg.Protocol)
	}
}

// serverTLS is the daemon's TLS configuration, nil when no certificate is configured. With
// client_ca_file, clients must present a certificate that CA signed.
func serverTLS(c config.TLS) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %s and tls.key_file %s: %w", c.CertFile, c.KeyFile, err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pool, err := auth.LoadCertPool(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// listen opens the daemon's listener: a unix socket of g's mode, or a TCP port (with TLS when
// configured).
func listen(cfg config.Config, g guard) (net.Listener, error) {
	if cfg.Protocol == config.ProtocolUnix {
		return listenUnix(cfg.Address, g.socketMode)
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listen on tcp %s: %w", cfg.Address, err)
	}
	if g.tls != nil {
		conf := g.tls.Clone()
		conf.NextProtos = []string{"h2", "http/1.1"}
		ln = tls.NewListener(ln, conf)
	}
	return ln, nil
}

// tcpHost returns the host of a host:port address.
func tcpHost(address string) (string, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return "", fmt.Errorf("tcp address %q: %w (want host:port, e.g. 127.0.0.1:8080)", address, err)
	}
	return host, nil
}

// isLoopback reports whether a host:port address is on loopback only.
func isLoopback(address string) bool {
	host, err := tcpHost(address)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// listenUnix listens on path with the given mode. An existing socket is replaced only when no
// daemon answers on it. The socket is created under a temporary name and renamed into place, so it
// is never reachable with a wider mode.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
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
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("set the mode of socket %s: %w", path, err)
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
