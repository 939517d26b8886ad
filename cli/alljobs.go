package cli

import (
	"context"
	"errors"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/gen/cedana/daemon/v1/daemonv1connect"
)

// checkSelection requires either job IDs or --all, not both.
func checkSelection(jids []string, all bool) error {
	switch {
	case all && len(jids) > 0:
		return errors.New("give job IDs or --all, not both")
	case !all && len(jids) == 0:
		return errors.New("no job given: name the job IDs, or pass --all")
	}
	return nil
}

// selectJobs lists the IDs of the daemon's jobs that keep accepts, for --all.
func selectJobs(ctx context.Context, client daemonv1connect.DaemonServiceClient, keep func(*daemonv1.Job) bool) ([]string, error) {
	resp, err := client.ListJobs(ctx, &daemonv1.ListJobsRequest{})
	if err != nil {
		return nil, err
	}
	var jids []string
	for _, j := range resp.GetJobs() {
		if keep(j) {
			jids = append(jids, j.GetJid())
		}
	}
	return jids, nil
}
