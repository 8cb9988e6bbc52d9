package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

func newReloadCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Re-read the policy file",
		Long: `reload makes the daemon re-read its policy file. A file with errors changes
nothing: replctl prints each error on stderr as

  file:line:col: policy "name": message

(the form editors jump to) and exits 1. Otherwise it prints what changed.`,
		Example: `  # After editing the policy file
  replctl reload

  # In a deploy script: fail the deploy when the file is rejected
  replctl reload || exit 1`,
		Args: argsUsage(cobra.NoArgs),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			client, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.unary(cmd.Context())
			defer cancel()
			resp, err := client.ReloadPolicies(ctx, &replicatorv1.ReloadPoliciesRequest{})
			if err != nil {
				return err
			}
			if a.g.output != "table" {
				if err := printMessage(a.stdout, a.g.output, resp); err != nil {
					return err
				}
			} else if resp.GetApplied() {
				writeReloadChanges(a.stdout, resp)
			}
			if !resp.GetApplied() {
				writeReloadErrors(a.stderr, resp.GetErrors())
				return &exitError{code: exitFailure, msg: fmt.Sprintf("policy file rejected with %d error(s); nothing changed", len(resp.GetErrors()))}
			}
			return nil
		}),
	}
}

// writeReloadErrors prints validation errors in the file:line:col form.
func writeReloadErrors(w io.Writer, errs []*replicatorv1.ValidationError) {
	for _, e := range errs {
		var b strings.Builder
		b.WriteString(clean(e.GetFile()))
		if e.GetLine() > 0 {
			fmt.Fprintf(&b, ":%d", e.GetLine())
			if e.GetColumn() > 0 {
				fmt.Fprintf(&b, ":%d", e.GetColumn())
			}
		}
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		if e.GetPolicy() != "" {
			fmt.Fprintf(&b, "policy %q: ", clean(e.GetPolicy()))
		}
		b.WriteString(oneLine(e.GetMessage()))
		fmt.Fprintln(w, b.String())
	}
}

// writeReloadChanges prints what an applied reload changed.
func writeReloadChanges(w io.Writer, r *replicatorv1.ReloadPoliciesResponse) {
	var parts []string
	for _, c := range []struct {
		verb  string
		names []string
	}{{"added", r.GetAdded()}, {"removed", r.GetRemoved()}, {"changed", r.GetChanged()}} {
		if len(c.names) > 0 {
			parts = append(parts, c.verb+" "+clean(strings.Join(c.names, ", ")))
		}
	}
	if len(parts) == 0 {
		fmt.Fprintln(w, "reloaded: no changes")
		return
	}
	fmt.Fprintln(w, "reloaded: "+strings.Join(parts, "; "))
}
