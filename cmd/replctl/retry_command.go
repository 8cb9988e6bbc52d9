package main

import (
	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

func newRetryCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "retry JOB...",
		Short: "Start a new attempt of failed or cancelled jobs",
		Long: `retry queues a new attempt of each failed or cancelled job; the job keeps its
id and its attempts count goes up. Retrying a job that is not finished, or
that succeeded, fails with FAILED_PRECONDITION (exit 19).`,
		Example: `  # Retry one job and follow it
  replctl retry j-01jd3k8x2m4n6p8r0t2v4x6z8a && replctl watch --job j-01jd3k8x2m4n6p8r0t2v4x6z8a

  # Retry every failed job of a policy
  replctl jobs --policy nightly --state failed --all -o json | jq -r .id | xargs replctl retry`,
		Args:              argsUsage(cobra.MinimumNArgs(1)),
		ValidArgsFunction: a.completeJobs(replicatorv1.JobState_JOB_STATE_FAILED, replicatorv1.JobState_JOB_STATE_CANCELLED),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			client, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.unary(cmd.Context())
			defer cancel()
			resp, err := client.Retry(ctx, &replicatorv1.RetryRequest{JobIds: args})
			if err != nil {
				return err
			}
			return a.printJobs(resp.GetJobs())
		}),
	}
}
