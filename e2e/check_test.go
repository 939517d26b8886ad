package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fullCheckSteps are a full check's steps, as its JSON output lists them.
type fullCheckSteps struct {
	Errors []string `json:"errors"`
	Steps  []struct {
		Name   string `json:"name"`
		Ok     bool   `json:"ok"`
		Took   string `json:"took"`
		Detail string `json:"detail"`
	} `json:"steps"`
}

// TestCheckFull: `cedana check --full` (in-process) and `cedana daemon check --full` dump and
// restore a tiny process step by step; with a CRIU that cannot work they fail at the dump, say
// so, exit 1, and leave neither the process nor its files behind.
func TestCheckFull(t *testing.T) {
	requireE2E(t)
	tests := []struct {
		name      string
		criu      string // CEDANA_CRIU_BINARY_PATH; "" for the installed CRIU
		wantCode  int
		wantSteps []string // name:ok|FAILED
		wantText  string
	}{
		{"passes", "", 0, []string{"spawn:ok", "dump:ok", "restore:ok", "verify:ok", "cleanup:ok"}, "counts on"},
		{"criu fails", "/bin/false", 1, []string{"spawn:ok", "dump:FAILED", "cleanup:ok"}, "problem: full check failed at step dump: criu dump"},
		{"no criu", "/nonexistent/criu", 1, []string{"spawn:ok", "dump:FAILED", "cleanup:ok"}, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			temp := t.TempDir()
			extra := []string{"CEDANA_CHECKPOINT_TEMP_DIR=" + temp}
			if tt.criu != "" {
				extra = append(extra, "CEDANA_CRIU_BINARY_PATH="+tt.criu)
			}
			d := startDaemon(t, cedanaBin, extra...)
			for _, args := range [][]string{{"check", "--full"}, {"daemon", "check", "--full"}} {
				r := d.cli(args...)
				require.Equal(t, tt.wantCode, r.code, "%v: %s", args, r)
				assert.Contains(t, r.stdout, tt.wantText, args)
				assert.Contains(t, lineWith(r.stdout, "image streaming "), "used for archives and s3:// checkpoints (criu --stream", args)
				var last int
				for _, step := range tt.wantSteps {
					name, state, _ := strings.Cut(step, ":")
					line := lineWith(r.stdout, "step "+name+" ")
					require.NotEmpty(t, line, "%v: no step %s in\n%s", args, name, r.stdout)
					assert.Regexp(t, `^step `+name+`\s+`+state+`\s+\d[\d.]*[µmn]?s\s`, line, args)
					at := strings.Index(r.stdout, line)
					assert.Greater(t, at, last, "%v: step %s out of order", args, name)
					last = at
				}
				requireNothingLeft(t, temp)

				r = d.cli(append(args, "--output", "json")...)
				require.Equal(t, tt.wantCode, r.code, "%v: %s", args, r)
				var report fullCheckSteps
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &report), r.stdout)
				require.Len(t, report.Steps, len(tt.wantSteps), r.stdout)
				for i, step := range tt.wantSteps {
					name, state, _ := strings.Cut(step, ":")
					assert.Equal(t, name, report.Steps[i].Name)
					assert.Equal(t, state == "ok", report.Steps[i].Ok, report.Steps[i].Detail)
					assert.NotEmpty(t, report.Steps[i].Took)
				}
				if tt.wantCode != 0 {
					require.NotEmpty(t, report.Errors)
					assert.Contains(t, report.Errors[len(report.Errors)-1], "full check failed at step dump")
				}
				requireNothingLeft(t, temp)
			}
		})
	}
}

// lineWith returns the first line of out that starts with prefix.
func lineWith(out, prefix string) string {
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// requireNothingLeft fails when temp holds anything or a process still names it on its command
// line (the check's counter does).
func requireNothingLeft(t *testing.T, temp string) {
	t.Helper()
	assert.Empty(t, entries(temp), "files left in %s", temp)
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(cmdline), temp) {
			t.Errorf("process %s left behind: %q", filepath.Base(filepath.Dir(p)), cmdline)
		}
	}
}
