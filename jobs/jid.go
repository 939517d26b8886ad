package jobs

import (
	"strings"

	"github.com/cedana/cedana/errs"
)

// MaxJIDLen is the longest job ID, in bytes.
const MaxJIDLen = 64

// ValidateJID allows 1 to MaxJIDLen letters, digits, '-', '_' and '.', not starting with '.': what
// every job's ID is, and what a log or stdin file name can be made of.
func ValidateJID(jid string) error {
	switch {
	case jid == "":
		return errs.Invalid("empty job ID: a job ID is 1-%d letters, digits, '-', '_' or '.'", MaxJIDLen)
	case len(jid) > MaxJIDLen:
		return errs.Invalid("job ID of %d bytes is too long: the limit is %d", len(jid), MaxJIDLen)
	case jid[0] == '.' || strings.IndexFunc(jid, notJIDRune) >= 0:
		return errs.Invalid("job ID %q must be 1-%d letters, digits, '-', '_' or '.', not starting with '.'", jid, MaxJIDLen)
	}
	return nil
}

func notJIDRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}
