package criu

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
)

// harmlessErrors are log lines that contain "Error" but do not explain a
// failure, so LogErrors leaves them out.
var harmlessErrors = []string{
	// criu raises its own fd limit at start-up and logs this at error level
	// when it cannot, e.g. in containers; every request then carries it.
	"rlimit: Can't setup RLIMIT_NOFILE for self",
}

// LogErrors reads the CRIU log file at path and returns its last limit lines
// that contain "Error" or "error" (such as `Error (criu/cr-dump.c:...)`),
// oldest first, leaving out lines known to be harmless (the RLIMIT_NOFILE
// warning). limit <= 0 means no limit. A missing or unreadable file yields
// nil: the function serves to enrich error messages, not to fail them.
func LogErrors(path string, limit int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()

	var lines []string
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if isErrorLine(line) {
			lines = append(lines, line)
			if limit > 0 && len(lines) > limit {
				lines = lines[1:]
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return lines
			}
			break
		}
	}
	return lines
}

// LogQuote is the tail of an error message that quotes the last three error lines of the CRIU log
// at path: "; CRIU log: <line> | <line> | <line>", or "" when the log has none (or is missing).
func LogQuote(path string) string {
	lines := LogErrors(path, 3)
	if len(lines) == 0 {
		return ""
	}
	return "; CRIU log: " + strings.Join(lines, " | ")
}

// isErrorLine reports whether a log line is an error worth showing.
func isErrorLine(line string) bool {
	if !strings.Contains(line, "Error") && !strings.Contains(line, "error") {
		return false
	}
	return !isHarmless(line)
}

// isHarmless reports whether a log line is one of harmlessErrors.
func isHarmless(line string) bool {
	for _, h := range harmlessErrors {
		if strings.Contains(line, h) {
			return true
		}
	}
	return false
}
