package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/internal/testutil"
)

// The unprivileged user the authorization tests run the CLI as, and a group that user is not in
// unless a test adds it.
const (
	nobody     = "nobody"
	testGroup  = "users"
	testGroupN = "100"
)

// openForOthers lets other users reach what a test's daemon serves and runs: the binaries'
// directory and the daemon's own.
func openForOthers(t *testing.T, d *daemon) {
	t.Helper()
	require.NoError(t, os.Chmod(filepath.Dir(cedanaBin), 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(d.dir), 0o755)) // the test's temporary root
	require.NoError(t, os.Chmod(d.dir, 0o755))
}

// asNobody runs the CLI as the unprivileged user nobody, with extra supplementary groups, against
// d, with env added to d's environment.
func asNobody(t *testing.T, d *daemon, groups []string, env []string, args ...string) result {
	t.Helper()
	setpriv := testutil.RequireTool(t, "setpriv") // util-linux
	priv := []string{"--reuid", nobody, "--regid", "nogroup", "--clear-groups"}
	if len(groups) > 0 {
		priv = []string{"--reuid", nobody, "--regid", "nogroup", "--groups", strings.Join(groups, ",")}
	}
	return runCmd(t, setpriv, append(append([]string{}, d.env...), env...), append(append(priv, cedanaBin), args...)...)
}

// TestUnixSocketAuthorization: without auth.allowed_groups the socket is root's alone; with a
// group, its members may call the daemon (unary and streaming calls) and anyone else is refused
// by the daemon, which logs who it refused.
func TestUnixSocketAuthorization(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	openForOthers(t, d)
	r := asNobody(t, d, nil, nil, "ps")
	requireOneLineError(t, r, "permission denied on the cedana daemon's socket "+d.socket, "auth.allowed_groups")
	// Without a group configured, the kernel refuses the socket to everyone but root.
	r = asNobody(t, d, []string{testGroupN}, nil, "ps")
	requireOneLineError(t, r, "permission denied")

	g := startDaemon(t, cedanaBin, "CEDANA_AUTH_ALLOWED_GROUPS="+testGroup)
	openForOthers(t, g)
	info, err := os.Stat(g.socket)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), info.Mode().Perm(), "group members must be able to connect; the daemon checks who")

	r = asNobody(t, g, nil, nil, "ps")
	requireOneLineError(t, r, "may not use the cedana daemon", "members of users (gid 100)", "usermod -aG users")
	assert.Regexp(t, `"refused a caller" uid=65534 gid=65534 pid=\d+`, g.log.String())
	r = asNobody(t, g, nil, nil, "run", "process", "--jid", "sneaky", "--", "touch", filepath.Join(g.dir, "pwned"))
	requireOneLineError(t, r, "may not use the cedana daemon")
	assert.NoFileExists(t, filepath.Join(g.dir, "pwned"))
	// The issue's reproduction, over the socket with curl.
	out := curlAs(t, nobody, nil, "--unix-socket", g.socket, "http://localhost/cedana.daemon.v1.DaemonService/Run",
		`{"type":"process","process":{"path":"/bin/sh","args":["-c","id > `+filepath.Join(g.dir, "x")+`"]}}`)
	assert.Contains(t, out, `"code":"permission_denied"`)
	assert.NoFileExists(t, filepath.Join(g.dir, "x"))
	// The Kubernetes endpoints too: a pod dump, and the runtime handler's PrepareRestore, which
	// would write into a rootfs as root; and a migration's two ends (Receive restores what it is
	// sent, as root).
	for procedure, body := range map[string]string{
		"Migrate":        `{"jid":"sneaky","to":"127.0.0.1:1"}`,
		"Receive":        `{"header":{"jid":"sneaky"}}`,
		"DumpPod":        `{"pod":"web","namespace":"default"}`,
		"PrepareRestore": `{"path":"` + g.dir + `","container":"app","rootfs":"` + g.dir + `"}`,
	} {
		out := curlAs(t, nobody, nil, "--unix-socket", g.socket, "http://localhost/cedana.daemon.v1.DaemonService/"+procedure, body)
		assert.Contains(t, out, `"code":"permission_denied"`, procedure)
	}

	// A member may: unary calls, and a streaming one (run --attach follows the job's output).
	r = asNobody(t, g, []string{testGroupN}, nil, "ps")
	require.Equal(t, 0, r.code, r.String())
	r = asNobody(t, g, []string{testGroupN}, nil, "run", "process", "--jid", "member", "--attach", "--", "sh", "-c", "echo from a member; exit 3")
	assert.Equal(t, 3, r.code, r.String())
	assert.Contains(t, r.stdout, "from a member")
}

// TestTCPAuthorization: TCP needs a token on every address, loopback included; every call
// without it, or with a wrong one, is refused, unary and streaming alike; with it, both work.
func TestTCPAuthorization(t *testing.T) {
	requireE2E(t)
	env := append(os.Environ(), "CEDANA_CONFIG_DIR="+t.TempDir(), "CEDANA_DB_PATH="+filepath.Join(t.TempDir(), "db"))
	for _, addr := range []string{freeLoopbackAddr(t), "localhost:0", "0.0.0.0:0"} {
		r := runCmd(t, cedanaBin, env, "daemon", "start", "--protocol", "tcp", "--address", addr)
		requireOneLineError(t, r, "refusing to listen on tcp "+addr+" without a token", "token_file", "CEDANA_TOKEN")
	}
	// A token in a config file other users may read is refused too.
	cfgDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"token":"s3cret"}`), 0o644))
	r := runCmd(t, cedanaBin, append(os.Environ(), "CEDANA_CONFIG_DIR="+cfgDir), "daemon", "start", "--protocol", "tcp", "--address", freeLoopbackAddr(t))
	requireOneLineError(t, r, "open to other users (mode 0644)", "chmod 600")
	// Off loopback, the token would cross the network in clear text: TLS, or an explicit --insecure.
	r = runCmd(t, cedanaBin, append(env, "CEDANA_TOKEN=s3cret"), "daemon", "start", "--protocol", "tcp", "--address", "0.0.0.0:0")
	requireOneLineError(t, r, "without TLS", "--insecure")

	addr := freeLoopbackAddr(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
	d := startTCPDaemon(t, addr, "CEDANA_TOKEN_FILE="+tokenFile)
	openForOthers(t, d)
	client := []string{"--protocol", "tcp", "--address", addr}

	// The issue's reproduction: an unprivileged user, no token.
	x := filepath.Join(d.dir, "x")
	out := curlAs(t, nobody, nil, fmt.Sprintf("http://%s/cedana.daemon.v1.DaemonService/Run", addr),
		`{"type":"process","process":{"path":"/bin/sh","args":["-c","id > `+x+`"]}}`)
	assert.Contains(t, out, `"code":"unauthenticated"`)
	out = curlAs(t, nobody, []string{"-H", "Authorization: Bearer guess"}, fmt.Sprintf("http://%s/cedana.daemon.v1.DaemonService/Run", addr),
		`{"type":"process","process":{"path":"/bin/sh","args":["-c","id > `+x+`"]}}`)
	assert.Contains(t, out, "wrong bearer token")
	assert.NoFileExists(t, x)

	// The CLI: no token and a wrong one are refused on unary and streaming calls.
	for _, token := range []string{"", "wrong"} {
		tokenEnv := []string{"CEDANA_TOKEN=" + token, "CEDANA_TOKEN_FILE="}
		r = asNobody(t, d, nil, tokenEnv, append(client, "ps")...)
		requireOneLineError(t, r, "bearer token")
		r = asNobody(t, d, nil, tokenEnv, append(client, "run", "process", "--attach", "--", "true")...)
		requireOneLineError(t, r, "bearer token")
		r = asNobody(t, d, nil, tokenEnv, append(client, "job", "attach", "any")...)
		requireOneLineError(t, r, "bearer token")
	}
	assert.Regexp(t, `refused a caller (without a|with a wrong) token" remote=127\.0\.0\.1:\d+`, d.log.String())

	// The right token, from the environment: unary and streaming calls work.
	right := []string{"CEDANA_TOKEN=s3cret"}
	r = asNobody(t, d, nil, right, append(client, "run", "process", "--jid", "t1", "--attach", "--", "sh", "-c", "echo over tcp; exit 7")...)
	assert.Equal(t, 7, r.code, r.String())
	assert.Contains(t, r.stdout, "over tcp")
	r = asNobody(t, d, nil, right, append(client, "job", "attach", "t1")...)
	assert.Equal(t, 7, r.code, r.String())
	assert.Contains(t, r.stdout, "over tcp")
}

// TestTCPWithTLS: a daemon with a certificate, client certificates required (mTLS) and a token;
// the CLI with the CA, its certificate and the token runs and attaches to jobs, dumps and restores
// with progress bars (streams) on a terminal. Without its certificate, in clear text, or without
// the token, it is refused.
func TestTCPWithTLS(t *testing.T) {
	requireE2E(t)
	pki := newTestPKI(t)
	addr := freeLoopbackAddr(t)
	d := startTCPDaemon(t, addr, "CEDANA_TOKEN=s3cret",
		"CEDANA_TLS_CERT_FILE="+pki.serverCert, "CEDANA_TLS_KEY_FILE="+pki.serverKey, "CEDANA_TLS_CLIENT_CA_FILE="+pki.ca)
	require.Contains(t, d.log.String(), "tls=true")
	clientEnv := append(append([]string{}, d.env...), "CEDANA_PROTOCOL=tcp", "CEDANA_ADDRESS="+addr,
		"CEDANA_TLS_CERT_FILE=", "CEDANA_TLS_KEY_FILE=", "CEDANA_TLS_CLIENT_CA_FILE=",
		"CEDANA_TLS_CA_FILE="+pki.ca, "CEDANA_TLS_CLIENT_CERT_FILE="+pki.clientCert, "CEDANA_TLS_CLIENT_KEY_FILE="+pki.clientKey)

	r := runCmd(t, cedanaBin, clientEnv, "run", "process", "--jid", "secure", "--attach", "--", "sh", "-c", "echo over tls; exit 5")
	assert.Equal(t, 5, r.code, r.String())
	assert.Contains(t, r.stdout, "over tls")
	r = runCmd(t, cedanaBin, clientEnv, "job", "attach", "secure")
	assert.Equal(t, 5, r.code, r.String())

	// Progress bars are a stream too: a compressed dump and its restore on a terminal.
	w := startCounter(t, false)
	dir := t.TempDir()
	out := onTerminal(t, append(clientEnv, "CEDANA_PROGRESS_DELAY=0s"), "dump", "process", fmt.Sprint(w.pid), "--dir", dir, "--name", "tls", "--compression", "lz4")
	assert.Contains(t, out, "archive", "a progress bar over TLS with a token")
	assert.Contains(t, out, "Dumped to "+filepath.Join(dir, "tls.tar.lz4"))
	w.waitExited(t)
	out = onTerminal(t, append(clientEnv, "CEDANA_PROGRESS_DELAY=0s"), "restore", "process", "--path", filepath.Join(dir, "tls.tar.lz4"))
	assert.Contains(t, out, "decompress")
	m := regexp.MustCompile(`Restored, PID: (\d+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	_, _ = fmt.Sscan(m[1], &w.restored)

	// Refused: no client certificate; no TLS at all; TLS without the token.
	r = runCmd(t, cedanaBin, append(clientEnv, "CEDANA_TLS_CLIENT_CERT_FILE=", "CEDANA_TLS_CLIENT_KEY_FILE="), "ps")
	require.NotEqual(t, 0, r.code, r.String())
	assert.Contains(t, r.stderr, "certificate")
	r = runCmd(t, cedanaBin, append(clientEnv, "CEDANA_TLS_CA_FILE=", "CEDANA_TLS_CLIENT_CERT_FILE=", "CEDANA_TLS_CLIENT_KEY_FILE="), "ps")
	require.NotEqual(t, 0, r.code, r.String())
	r = runCmd(t, cedanaBin, append(clientEnv, "CEDANA_TOKEN="), "job", "attach", "secure")
	requireOneLineError(t, r, "requires a bearer token")

	// Off loopback, TLS is what makes TCP acceptable; --insecure is the explicit way around it.
	_, port, err := net.SplitHostPort(freeLoopbackAddr(t))
	require.NoError(t, err)
	pub := startTCPDaemon(t, "0.0.0.0:"+port, "CEDANA_TOKEN=s3cret", "CEDANA_TLS_CERT_FILE="+pki.serverCert, "CEDANA_TLS_KEY_FILE="+pki.serverKey)
	assert.Contains(t, pub.log.String(), "tls=true")
	_, port, err = net.SplitHostPort(freeLoopbackAddr(t))
	require.NoError(t, err)
	insecure := startTCPDaemonArgs(t, "0.0.0.0:"+port, []string{"--insecure"}, "CEDANA_TOKEN=s3cret")
	assert.Contains(t, insecure.log.String(), "tls=false")
}

// TestRequestSizeLimit: a 300 MB request is refused with resource_exhausted without the daemon
// buffering it, and a panic-free daemon goes on serving.
func TestRequestSizeLimit(t *testing.T) {
	requireE2E(t)
	d := startDaemon(t, cedanaBin)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
	}}}
	const size = 300 << 20
	for _, chunked := range []bool{false, true} {
		body := io.MultiReader(strings.NewReader(`{"type":"process","process":{"path":"`),
			io.LimitReader(repeatByte('a'), size), strings.NewReader(`"}}`))
		req, err := http.NewRequest(http.MethodPost, "http://localhost/cedana.daemon.v1.DaemonService/Run", body)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if !chunked {
			req.ContentLength = size + 40
		}
		resp, err := client.Do(req)
		if err == nil {
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Contains(t, string(answer), `"code":"resource_exhausted"`, "chunked=%v", chunked)
			t.Logf("chunked=%v: %s %s", chunked, resp.Status, answer)
		} else {
			// The daemon may close the connection while the client still sends: then it never
			// answered with anything but a refusal.
			assert.ErrorContains(t, err, "connection reset", "chunked=%v", chunked)
			t.Logf("chunked=%v: %v", chunked, err)
		}
	}
	hwm := daemonPeakRSS(t, d)
	t.Logf("daemon peak RSS: %d MiB", hwm>>20)
	assert.Less(t, hwm, int64(100<<20), "the daemon's peak RSS after two 300 MB requests: %d MiB", hwm>>20)
	r := d.cli("ps")
	require.Equal(t, 0, r.code, r.String())
}

// daemonPeakRSS is the daemon's peak resident set size (VmHWM).
func daemonPeakRSS(t *testing.T, d *daemon) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	require.NoError(t, err)
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(data)
	require.NotNil(t, m)
	var kb int64
	_, _ = fmt.Sscan(string(m[1]), &kb)
	return kb << 10
}

// repeatByte is an endless reader of one byte.
type repeatByte byte

func (b repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// curlAs posts body with the real curl as user, with extra curl arguments before the URL's.
func curlAs(t *testing.T, user string, extra []string, args ...string) string {
	t.Helper()
	body := args[len(args)-1]
	cmd := exec.Command("setpriv", append(append([]string{
		"--reuid", user, "--regid", "nogroup", "--clear-groups", "curl", "-sS",
		"-H", "Content-Type: application/json",
	}, extra...), append(args[:len(args)-1], "-d", body)...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// onTerminal runs the CLI with a terminal as its stdio (through script(1)) and returns its output.
func onTerminal(t *testing.T, env []string, args ...string) string {
	t.Helper()
	script := testutil.RequireTool(t, "script") // bsdutils
	cmd := exec.Command(script, "-qec", cedanaBin+" "+strings.Join(args, " "), "/dev/null")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate, as PEM files.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cedana test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	p := testPKI{ca: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.ca, "CERTIFICATE", caDER)

	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) (cert, key string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, cert, "CERTIFICATE", der)
		writePEM(t, key, "EC PRIVATE KEY", keyDER)
		return cert, key
	}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, pem.Encode(&buf, &pem.Block{Type: kind, Bytes: der}))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}
