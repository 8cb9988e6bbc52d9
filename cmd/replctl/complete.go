package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// completeJobs completes job ids from the daemon's newest jobs in states
// (all when none), described as "image src>dst STATE". When the daemon
// cannot be reached it offers nothing rather than an error: a shell
// completion must never print.
func (a *app) completeJobs(states ...replicatorv1.JobState) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if err := a.applyEnv(cmd); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		jobs, _, err := a.listJobs(cmd.Context(), &replicatorv1.ListJobsRequest{States: states, PageSize: 200}, false)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, j := range jobs {
			if !strings.HasPrefix(j.GetId(), toComplete) || slices.Contains(args, j.GetId()) {
				continue
			}
			out = append(out, cobra.CompletionWithDesc(j.GetId(), fmt.Sprintf("%s %s>%s %s",
				j.GetSourceImageId(), j.GetSourceRegion(), j.GetDestinationRegion(), stateName(j.GetState()))))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
