package main

import (
	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

func newPlanCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "plan [POLICY...]",
		Short: "Show what the policies would do now (dry run)",
		Long: `plan asks the daemon what its policies would do now, without changing
anything: for each image and destination region whether a copy would start
(COPY), already exists (EXISTS), would be adopted (ADOPT) or pruned (PRUNE), is
in progress (IN_PROGRESS) or cannot be made (BLOCKED, with the reason). A
summary line gives the number of copies, their size and the estimated time.
-o json prints the whole PlanPoliciesResponse on one line.`,
		Example: `  # Plan of every policy
  replctl plan

  # Only two policies, and only what would be copied
  replctl plan nightly weekly -o json | jq -c '.items[] | select(.action=="PLAN_ACTION_COPY")'`,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			client, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.unary(cmd.Context())
			defer cancel()
			resp, err := client.PlanPolicies(ctx, &replicatorv1.PlanPoliciesRequest{Policies: args})
			if err != nil {
				return err
			}
			if a.g.output == "table" {
				return writePlanTable(a.stdout, resp)
			}
			return printMessage(a.stdout, a.g.output, resp)
		}),
	}
}
