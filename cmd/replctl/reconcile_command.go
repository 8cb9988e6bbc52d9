package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

func newReconcileCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reconcile [POLICY...]",
		Short: "Run policies now instead of at their next interval",
		Long: `reconcile makes the daemon run the named policies (every enabled policy when
none is named) now: list the matching source images, compare with the copies
in every destination, and start what is missing. Image pipelines call it right
after they built a new image, so copies start at once.`,
		Example: `  # After the nightly build published a new golden image
  replctl reconcile golden-to-east

  # Every enabled policy
  replctl reconcile`,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			client, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.unary(cmd.Context())
			defer cancel()
			resp, err := client.ReconcilePolicies(ctx, &replicatorv1.ReconcilePoliciesRequest{Policies: args})
			if err != nil {
				return err
			}
			if a.g.output != "table" {
				return printMessage(a.stdout, a.g.output, resp)
			}
			if len(resp.GetPolicies()) == 0 {
				fmt.Fprintln(a.stdout, "no enabled policy to run")
				return nil
			}
			fmt.Fprintln(a.stdout, "running now: "+strings.Join(resp.GetPolicies(), ", "))
			return nil
		}),
	}
}
