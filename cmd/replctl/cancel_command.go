package main

import (
	"fmt"

	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// activeStates are the states a job can be cancelled in (CANCELLING is
// already on its way).
var activeStates = []replicatorv1.JobState{
	replicatorv1.JobState_JOB_STATE_QUEUED,
	replicatorv1.JobState_JOB_STATE_SUBMITTING,
	replicatorv1.JobState_JOB_STATE_WAITING,
	replicatorv1.JobState_JOB_STATE_COPYING,
}

func newCancelCommand(a *app) *cobra.Command {
	var image, region string
	cmd := &cobra.Command{
		Use:   "cancel JOB... | --image ID [--region R]",
		Short: "Cancel jobs",
		Long: `cancel cancels jobs by id, or every unfinished job of a source image (in one
destination region with --region). A queued job is cancelled at once; a copy
already in ECS is cancelled with CancelCopyImage and shows CANCELLING until
ECS has removed it. Cancelling a finished job fails with FAILED_PRECONDITION
(exit 19).`,
		Example: `  # Cancel two jobs
  replctl cancel j-01jd3k8x2m4n6p8r0t2v4x6z8a j-01jd3k8x2m4n6p8r0t2v4x6z8b

  # Cancel the copy of an image to one region, whatever its job id
  replctl cancel --image m-bp1abc --region cn-shanghai`,
		ValidArgsFunction: a.completeJobs(activeStates...),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			byFilter := image != "" || region != ""
			switch {
			case len(args) > 0 && byFilter:
				return usagef("give job ids or --image/--region, not both")
			case len(args) == 0 && !byFilter:
				return usagef("give job ids, or --image ID [--region R]")
			case byFilter && image == "":
				return usagef("--region needs --image")
			}
			ids := args
			if byFilter {
				jobs, _, err := a.listJobs(cmd.Context(), &replicatorv1.ListJobsRequest{
					States: activeStates, SourceImageId: image, DestinationRegion: region, PageSize: 1000,
				}, true)
				if err != nil {
					return err
				}
				if len(jobs) == 0 {
					fmt.Fprintf(a.stderr, "no unfinished copy of %s%s; nothing to cancel\n", image, inRegion(region))
					return nil
				}
				ids = nil
				for _, j := range jobs {
					ids = append(ids, j.GetId())
				}
			}
			client, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.unary(cmd.Context())
			defer cancel()
			resp, err := client.Cancel(ctx, &replicatorv1.CancelRequest{JobIds: ids})
			if err != nil {
				return err
			}
			return a.printJobs(resp.GetJobs())
		}),
	}
	cmd.Flags().StringVar(&image, "image", "", "cancel the unfinished jobs copying this source image")
	cmd.Flags().StringVar(&region, "region", "", "with --image: only the copy to this destination region")
	return cmd
}

func inRegion(r string) string {
	if r == "" {
		return ""
	}
	return " to " + r
}
