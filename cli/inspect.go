package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/cedana/cedana/explore"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// inspectImages asks the daemon to decode the checkpoint's images and prints them as a table, or
// with --output json as crit's JSON (`crit x` shapes).
func (c *CheckpointInspectCmd) inspectImages(ctx context.Context, g *Globals, env Env, client daemonv1connect.DaemonServiceClient) error {
	path, err := localOrRemote(c.Path)
	if err != nil {
		return err
	}
	resp, err := client.InspectCheckpoint(ctx, &daemonv1.InspectCheckpointRequest{Id: c.ID, Path: path, Type: c.Type})
	if err != nil {
		return err
	}
	if resp.GetTruncated() {
		fmt.Fprintf(env.Stderr, "cedana: truncated: only the first %d entries of each process are shown\n", resp.GetMaxEntries())
	}
	if g.Output == "json" {
		var out bytes.Buffer
		if err := json.Indent(&out, []byte(resp.GetJson()), "", "  "); err != nil {
			return fmt.Errorf("the daemon's answer is not JSON: %w", err)
		}
		out.WriteByte('\n')
		_, err := out.WriteTo(env.Stdout)
		return err
	}
	return explore.Print(env.Stdout, resp.GetType(), []byte(resp.GetJson()))
}
