package main

import (
	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

func newGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get JOB",
		Short: "Show one job in detail",
		Example: `  # Every field of a job
  replctl get j-01jd3k8x2m4n6p8r0t2v4x6z8a

  # Its destination image id, for a script
  replctl get j-01jd3k8x2m4n6p8r0t2v4x6z8a -o json | jq -r .destinationImageId`,
		Args:              argsUsage(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeJobs(),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			client, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.unary(cmd.Context())
			defer cancel()
			resp, err := client.GetJob(ctx, &replicatorv1.GetJobRequest{JobId: args[0]})
			if err != nil {
				return err
			}
			if a.g.output == "table" {
				return writeJobDetail(a.stdout, resp.GetJob(), a.now())
			}
			return printMessage(a.stdout, a.g.output, resp.GetJob())
		}),
	}
}
