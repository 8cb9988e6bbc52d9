package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/input"
)

func newJobsCommand(a *app) *cobra.Command {
	var (
		req    replicatorv1.ListJobsRequest
		states []string
		all    bool
	)
	cmd := &cobra.Command{
		Use:     "jobs",
		Aliases: []string{"ls", "list"},
		Short:   "List jobs, newest first",
		Long: `jobs lists jobs, newest first, as a table (ID, IMAGE, FROM, TO, STATE,
PROGRESS, CLOUD, AGE, ERROR), or one protojson Job per line with -o json.
PROGRESS is as of the answer: ~47% is the daemon's estimate from ECS's last
report (polls may be minutes apart), 45% is ECS's own figure.

Filters combine: a job is listed when it matches all of them (and any of the
--state values). One page is listed (--limit, default 100); when there are
more, the token for the next page is printed on stderr. --all follows the
pages to the end.`,
		Example: `  # Running copies
  replctl jobs --state queued --state waiting --state copying

  # Every failed job of a policy, as JSON lines
  replctl jobs --policy nightly --state failed --all -o json | jq -r .id

  # The next page
  replctl jobs --limit 50 --page-token "$TOKEN"`,
		Args: argsUsage(cobra.NoArgs),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			for _, s := range splitList(states) {
				st, ok := parseStateFlag(s)
				if !ok {
					return usagef("bad --state %s: want queued, submitting, waiting, copying, succeeded, failed, cancelling or cancelled", input.Quote(s))
				}
				req.States = append(req.States, st)
			}
			if req.PageSize < 0 {
				return usagef("bad --limit %d: must be positive", req.PageSize)
			}
			jobs, next, err := a.listJobs(cmd.Context(), &req, all)
			if err != nil {
				return err
			}
			if err := a.printJobs(jobs); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(a.stderr, "more jobs: --page-token %s (or --all)\n", next)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringArrayVar(&states, "state", nil, "only jobs in this state (repeatable): queued, submitting, waiting, copying, succeeded, failed, cancelling, cancelled")
	f.StringVar(&req.Policy, "policy", "", "only jobs of this policy")
	f.StringVar(&req.SourceImageId, "image", "", "only copies of this source image")
	f.StringVar(&req.DestinationRegion, "region", "", "only copies to this destination region")
	f.Int32Var(&req.PageSize, "limit", 0, "jobs per page (server default 100, at most 1000)")
	f.StringVar(&req.PageToken, "page-token", "", "continue from a previous listing")
	f.BoolVar(&all, "all", false, "follow the pages to the end")
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(
		[]string{"queued", "submitting", "waiting", "copying", "succeeded", "failed", "cancelling", "cancelled"},
		cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// listJobs calls ListJobs once, or until the last page with all. It returns
// the next page token when it stopped early.
func (a *app) listJobs(ctx context.Context, req *replicatorv1.ListJobsRequest, all bool) ([]*replicatorv1.Job, string, error) {
	client, err := a.client(ctx)
	if err != nil {
		return nil, "", err
	}
	var jobs []*replicatorv1.Job
	seen := map[string]bool{}
	for {
		cctx, cancel := a.unary(ctx)
		resp, err := client.ListJobs(cctx, req)
		cancel()
		if err != nil {
			return nil, "", err
		}
		jobs = append(jobs, resp.GetJobs()...)
		next := resp.GetNextPageToken()
		if !all || next == "" {
			return jobs, next, nil
		}
		if seen[next] {
			return nil, "", fmt.Errorf("the daemon returned page token %q twice; stopping", next)
		}
		seen[next] = true
		req.PageToken = next
	}
}

// printJobs prints jobs as a table or one message per job.
func (a *app) printJobs(jobs []*replicatorv1.Job) error {
	if a.g.output == "table" {
		return writeJobsTable(a.stdout, jobs, a.now())
	}
	for _, j := range jobs {
		if err := printMessage(a.stdout, a.g.output, j); err != nil {
			return err
		}
	}
	return nil
}
