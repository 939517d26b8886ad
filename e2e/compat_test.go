package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/storage/storagetest"
)

// compatFile lists the Cedana-style command lines that must work unchanged.
const compatFile = "testdata/cedana-compat.txt"

// compatLine is one line of compatFile: a shell command line as a user types it, the exit code
// it must end with and a substring its output (stdout and stderr) must hold.
type compatLine struct {
	n       int
	code    int
	expect  string
	command string
}

// parseCompat reads compatFile's lines: `<exit code> <Go-quoted substring> <command line>`;
// blank lines and lines starting with # are skipped.
func parseCompat(path string) ([]compatLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []compatLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		codeText, rest, _ := strings.Cut(text, " ")
		code, err := strconv.Atoi(codeText)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: the line must start with an exit code: %w", path, n, err)
		}
		rest = strings.TrimSpace(rest)
		quoted, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: the exit code must be followed by a double-quoted substring: %w", path, n, err)
		}
		expect, _ := strconv.Unquote(quoted)
		command := strings.TrimSpace(rest[len(quoted):])
		if command == "" {
			return nil, fmt.Errorf("%s:%d: no command line after the expected substring", path, n)
		}
		lines = append(lines, compatLine{n: n, code: code, expect: expect, command: command})
	}
	return lines, sc.Err()
}

func TestParseCompat(t *testing.T) {
	lines, err := parseCompat(compatFile)
	require.NoError(t, err)
	require.NotEmpty(t, lines)
	path := filepath.Join(t.TempDir(), "c.txt")
	require.NoError(t, os.WriteFile(path, []byte("# comment\n\n0 \"a \\\"b\\\"\" cedana ps | grep -c x\n"), 0o644))
	lines, err = parseCompat(path)
	require.NoError(t, err)
	assert.Equal(t, []compatLine{{n: 3, code: 0, expect: `a "b"`, command: "cedana ps | grep -c x"}}, lines)
	for _, bad := range []string{"x \"\" cedana ps", "0 nope cedana ps", "0 \"\""} {
		require.NoError(t, os.WriteFile(path, []byte(bad), 0o644))
		_, err = parseCompat(path)
		assert.Error(t, err, bad)
	}
}

// TestCedanaCompat runs every line of compatFile with bash, `cedana` on PATH being the built
// binary, against one daemon. Each line gets, when it names them: $PID, a counting process tree
// of its own (killed afterwards); $DIR, an empty scratch directory; $S3, an s3:// prefix on a real
// S3 server the daemon is configured for; $BUNDLE, $RUNC_ROOT and $CID, a runc bundle (busybox,
// counting), a private runc root and a container ID; $JID, a job ID of its own. A line that names
// containerd (or ctr) runs against the shared containerd, which CONTAINERD_ADDRESS names for cedana
// and ctr alike, with $CTRD_ADDR, $NS (its namespace), $IMAGE (busybox) and $CTR_ID (a container
// ID of its own); its containers are removed afterwards.
func TestCedanaCompat(t *testing.T) {
	requireE2E(t)
	lines, err := parseCompat(compatFile)
	require.NoError(t, err)
	var extraEnv []string
	var s3Prefix string
	if anyNames(lines, "$S3") {
		srv := storagetest.Start(t)
		extraEnv = append(srv.Env(), "CEDANA_CHECKPOINT_TEMP_DIR="+t.TempDir())
		s3Prefix = "s3://" + srv.Bucket + "/compat"
	}
	d := startDaemon(t, cedanaBin, extraEnv...)
	binDir := t.TempDir()
	require.NoError(t, os.Symlink(cedanaBin, filepath.Join(binDir, "cedana")))
	t.Cleanup(func() { killJobs(t, d) })
	var removals sync.WaitGroup
	t.Cleanup(removals.Wait)

	for _, l := range lines {
		t.Run(fmt.Sprintf("line %d", l.n), func(t *testing.T) {
			env := append(slices.Clone(d.env), "DIR="+t.TempDir(), "JID=compat-"+strconv.Itoa(l.n))
			if names(l.command, "$PID") {
				env = append(env, "PID="+strconv.Itoa(startCounter(t, false).pid))
			}
			if names(l.command, "$S3") {
				env = append(env, "S3="+s3Prefix+"/"+strconv.Itoa(l.n))
			}
			if names(l.command, "$BUNDLE", "$RUNC_ROOT", "$CID") {
				e := newRuncEnv(t)
				env = append(env, "BUNDLE="+e.bundle, "RUNC_ROOT="+e.root, "CID=compat-"+strconv.Itoa(l.n))
			}
			if usesContainerd(l.command) {
				t.Parallel()
				env = append(env, containerdLineEnv(t, &removals, l.n)...)
			}
			cmd := exec.Command("bash", "-c", l.command)
			cmd.Env = append(env, "PATH="+binDir+":"+containerdBin+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			code := 0
			if exitErr := (*exec.ExitError)(nil); err != nil {
				require.ErrorAs(t, err, &exitErr, "run %s", l.command)
				code = exitErr.ExitCode()
			}
			assert.Equal(t, l.code, code, "%s:%d: %s\n%s", compatFile, l.n, l.command, out)
			assert.Contains(t, string(out), l.expect, "%s:%d: %s", compatFile, l.n, l.command)
		})
	}
}

// usesContainerd tells whether command runs cedana's containerd commands or ctr.
func usesContainerd(command string) bool {
	return strings.Contains(command, "containerd") || strings.Contains(command, "ctr ") ||
		names(command, "$CTRD_ADDR", "$NS", "$IMAGE", "$CTR_ID")
}

// containerdLineEnv is the environment of compatFile's line n that uses containerd: the shared
// containerd (for cedana and ctr, which read CONTAINERD_ADDRESS and CONTAINERD_NAMESPACE), ctr on
// PATH and the line's own container ID. The line's containers (ccd-<n>*, and the job's, named
// after $JID) are removed when it ends.
func containerdLineEnv(t *testing.T, removals *sync.WaitGroup, n int) []string {
	const ns = "default"
	c := needContainerd(t, ns)
	id, jid := "ccd-"+strconv.Itoa(n), "compat-"+strconv.Itoa(n)
	// The removal (a second or so) overlaps the next lines; the test waits for it at its end.
	t.Cleanup(func() {
		removals.Add(1)
		go func() {
			defer removals.Done()
			out, _ := c.ctr(ns, "containers", "ls", "-q")
			for _, name := range strings.Fields(out) {
				if strings.HasPrefix(name, id) || name == jid {
					removeContainer(c, ns, name)
				}
			}
		}()
	})
	return []string{
		"CONTAINERD_ADDRESS=" + c.address, "CONTAINERD_NAMESPACE=" + ns, "CTRD_ADDR=" + c.address, "NS=" + ns,
		"IMAGE=" + testImage, "CTR_ID=" + id,
	}
}

// names tells whether command refers to one of the variables (as $X or ${X}).
func names(command string, vars ...string) bool {
	for _, v := range vars {
		if strings.Contains(command, v) || strings.Contains(command, "${"+v[1:]+"}") {
			return true
		}
	}
	return false
}

// anyNames tells whether one of lines refers to v.
func anyNames(lines []compatLine, v string) bool {
	for _, l := range lines {
		if names(l.command, v) {
			return true
		}
	}
	return false
}

// killJobs kills the processes of the jobs the lines left running (jobs outlive the daemon).
func killJobs(t *testing.T, d *daemon) {
	r := d.cli("ps", "-o", "json")
	var jobs struct {
		Jobs []struct {
			Pid int `json:"pid"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil {
		t.Logf("list the jobs to kill: %v\n%s", err, r)
		return
	}
	for _, j := range jobs.Jobs {
		if j.Pid > 0 {
			killTree(j.Pid)
		}
	}
}
