package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// reportsOnly is a daemon whose WatchProgress sends the given reports, then ends.
type reportsOnly struct {
	daemonv1connect.UnimplementedDaemonServiceHandler
	reports []*daemonv1.WatchProgressResponse
}

func (r reportsOnly) WatchProgress(_ context.Context, _ *daemonv1.WatchProgressRequest, stream *connect.ServerStream[daemonv1.WatchProgressResponse]) error {
	for _, m := range r.reports {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// TestShowProgress: the bar shows the phases the watch saw, including that of a finished
// operation whose only report is its last (a watch that connected once it was over); before
// its delay, or without a phase, nothing is drawn.
func TestShowProgress(t *testing.T) {
	finished := &daemonv1.WatchProgressResponse{Phase: "archive", DoneBytes: 4096, TotalBytes: 4096, Finished: true}
	for _, tc := range []struct {
		name    string
		reports []*daemonv1.WatchProgressResponse
		delay   string
		want    []string // "" for no output
	}{
		{"only the finished report", []*daemonv1.WatchProgressResponse{finished}, "0s", []string{"archive", "100%"}},
		{"phases, then finished", []*daemonv1.WatchProgressResponse{
			{Phase: "decompress", DoneBytes: 10, TotalBytes: 4096}, finished,
		}, "0s", []string{"decompress", "archive"}},
		{"no phase", []*daemonv1.WatchProgressResponse{{Finished: true}}, "0s", nil},
		{"over before the delay", []*daemonv1.WatchProgressResponse{finished}, "1h", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle(daemonv1connect.NewDaemonServiceHandler(reportsOnly{reports: tc.reports}))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			client := daemonv1connect.NewDaemonServiceClient(srv.Client(), srv.URL)
			var out bytes.Buffer
			delay, err := time.ParseDuration(tc.delay)
			require.NoError(t, err)
			showProgress(context.Background(), &out, client, "op", delay)
			if tc.want == nil {
				assert.Empty(t, out.String())
			}
			for _, w := range tc.want {
				assert.Contains(t, out.String(), w)
			}
		})
	}
}
