package main

import (
	"context"

	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

func newWatchCommand(a *app) *cobra.Command {
	var (
		req     replicatorv1.WatchRequest
		groupBy string
	)
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Watch jobs change, live",
		Long: `watch shows the current jobs, then every change, until interrupted (Ctrl-C,
exit 0). In a terminal it is a live view grouped by policy or image, with a
progress bar and an ETA per running copy, finished jobs collapsed into one
summary line per group. Between the daemon's polls of ECS (minutes apart)
the bars move and the ETAs count down every second, extrapolated from ECS's
last report; such a percent is shown as ~47%, and the next report corrects
it (a bar holds rather than moving back, unless ECS's own figure went
down). Otherwise it prints one plain line per change, with ECS's reported
percent:

  TIME JOB IMAGE SRC>DST STATE PERCENT% CLOUD [image=DEST-ID] [error=CODE: MESSAGE]

and with -o json one protojson WatchResponse per line.

When the connection is lost, watch reconnects with backoff and resumes after
the last revision it saw, so no change is missed; if the daemon no longer
retains that revision it says so and starts again from a fresh snapshot.`,
		Example: `  # Everything, live
  replctl watch

  # One policy, grouped by image
  replctl watch --policy nightly --group-by image

  # Failures as they happen, for a log
  replctl watch | grep --line-buffered ' FAILED '

  # Resume a JSON feed after revision 1200
  replctl watch -o json --from-revision 1200 | jq -c .job`,
		Args: argsUsage(cobra.NoArgs),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := checkGroupBy(groupBy); err != nil {
				return err
			}
			if req.FromRevision < 0 {
				return usagef("bad --from-revision %d: must be 0 or more", req.FromRevision)
			}
			req.JobIds = splitList(req.JobIds)
			return a.watch(cmd.Context(), &req, groupBy)
		}),
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.JobIds, "job", nil, "only this job (repeatable)")
	f.StringVar(&req.Policy, "policy", "", "only jobs of this policy")
	f.StringVar(&req.SourceImageId, "image", "", "only copies of this source image")
	f.StringVar(&req.DestinationRegion, "region", "", "only copies to this destination region")
	f.Int64Var(&req.FromRevision, "from-revision", 0, "start after this revision instead of with a snapshot")
	f.StringVar(&groupBy, "group-by", groupByPolicy, "live view grouping: policy or image")
	return cmd
}

// watch follows jobs until ctx ends; an interrupt is a normal end (exit 0).
func (a *app) watch(ctx context.Context, req *replicatorv1.WatchRequest, groupBy string) error {
	client, err := a.client(ctx)
	if err != nil {
		return err
	}
	tr := newTracker()
	f := &follower{a: a, tr: tr, out: a.newSink(tr, groupBy, "no jobs yet")}
	err = f.watch(ctx, client, req, nil, false)
	if cerr := f.out.close(); err == nil {
		err = cerr
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}
