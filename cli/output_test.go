package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

// TestPrintJSONIsStable checks that -o json output has one space after each colon and two-space
// indentation, whatever protojson's deliberately random whitespace is in this build.
func TestPrintJSONIsStable(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, printJSON(&out, &daemonv1.Job{Jid: "j1", Status: "running", Pid: 7}))
	require.Equal(t, "{\n  \"jid\": \"j1\",\n  \"pid\": 7,\n  \"status\": \"running\"\n}\n", out.String())
}
