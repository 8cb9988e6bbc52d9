package main

import (
	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

func newPoliciesCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "policies",
		Short: "List the loaded replication policies and their status",
		Long: `policies lists the policies the daemon has loaded: source and destination
regions, interval, how many images the selectors match now, job counts by
state, when the policy last ran and its last error (or, when its runs go
through, that of a destination being retried alone). -o json prints one Policy
per line, with its definition re-encoded as YAML.`,
		Example: `  # Status of every policy
  replctl policies

  # The definition of one policy as the daemon understood it
  replctl policies -o json | jq -r 'select(.name=="nightly") | .definition'`,
		Args: argsUsage(cobra.NoArgs),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			client, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.unary(cmd.Context())
			defer cancel()
			resp, err := client.ListPolicies(ctx, &replicatorv1.ListPoliciesRequest{})
			if err != nil {
				return err
			}
			if a.g.output == "table" {
				return writePoliciesTable(a.stdout, resp, a.now())
			}
			for _, p := range resp.GetPolicies() {
				if err := printMessage(a.stdout, a.g.output, p); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}
