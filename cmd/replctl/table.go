package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// The table renderers are pure functions of their input and now, so their
// output is pinned by golden files.

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// writeJobsTable prints jobs as a table, one row per job.
func writeJobsTable(w io.Writer, jobs []*replicatorv1.Job, now time.Time) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "ID\tIMAGE\tFROM\tTO\tSTATE\tPROGRESS\tCLOUD\tAGE\tERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			clean(j.GetId()), clean(j.GetSourceImageId()), clean(j.GetSourceRegion()), clean(j.GetDestinationRegion()),
			stateName(j.GetState()), strings.TrimSpace(percentText(j.GetProgressPercent(), j.GetProgressEstimated(), observedPercent(j))), dash(clean(j.GetCloudStatus())),
			age(now, j.GetCreateTime()),
			dash(truncate(oneLine(jobError(j)), 60)))
	}
	return tw.Flush()
}

// writeJobDetail prints every field of one job, one per line.
func writeJobDetail(w io.Writer, j *replicatorv1.Job, now time.Time) error {
	tw := newTabWriter(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", clean(k), clean(v)) }
	ts := func(t *timestamppb.Timestamp) string {
		if t == nil {
			return "-"
		}
		tt := t.AsTime().UTC()
		d := now.Sub(tt)
		if d >= 0 {
			return fmt.Sprintf("%s (%s ago)", tt.Format(time.RFC3339), shortDuration(d))
		}
		return fmt.Sprintf("%s (in %s)", tt.Format(time.RFC3339), shortDuration(-d))
	}
	row("ID", j.GetId())
	if j.GetPolicy() == "" {
		row("Policy", "- (ad hoc)")
	} else {
		row("Policy", j.GetPolicy())
	}
	row("Source", j.GetSourceRegion()+" "+imageLabel(j.GetSourceImageId(), j.GetSourceImageName()))
	row("Destination", j.GetDestinationRegion()+" "+imageLabel(dash(j.GetDestinationImageId()), j.GetDestinationImageName()))
	if j.GetDestinationDescription() != "" {
		row("Description", oneLine(j.GetDestinationDescription()))
	}
	row("State", stateName(j.GetState()))
	if p := j.GetProgressPercent(); j.GetProgressEstimated() && p != j.GetObservedProgressPercent() {
		row("Progress", fmt.Sprintf("~%d%% (estimated; ECS reported %d%% at %s)", p, j.GetObservedProgressPercent(), ts(j.GetProgressTime())))
	} else {
		row("Progress", fmt.Sprintf("%d%%", p))
	}
	row("Cloud status", dash(j.GetCloudStatus()))
	if r := j.GetRemaining(); r != nil && !terminal(j.GetState()) {
		row("Remaining", shortDuration(r.AsDuration()))
	}
	if e := j.GetError(); e != nil {
		row("Error", oneLine(jobError(j)))
		if e.GetRequestId() != "" {
			row("Request id", e.GetRequestId())
		}
		row("Retryable", fmt.Sprint(e.GetRetryable()))
	}
	row("Attempts", fmt.Sprint(j.GetAttempts()))
	if j.GetAdopted() {
		row("Adopted", "yes: "+oneLine(j.GetAdoptionReason()))
	}
	if j.GetCancelTime() != nil {
		row("Cancelled by", oneLine(j.GetCancelledBy())+" at "+ts(j.GetCancelTime()))
	}
	if j.GetPruneReason() != "" {
		row("Pruned", oneLine(j.GetPruneReason()))
	}
	if j.GetNextAttemptTime() != nil {
		row("Next attempt", ts(j.GetNextAttemptTime()))
	}
	row("Size", fmt.Sprintf("%d GiB", j.GetSizeGib()))
	if j.GetEncrypted() {
		row("Encrypted", "yes, KMS key "+dash(j.GetKmsKeyId()))
	}
	if len(j.GetTags()) > 0 {
		keys := make([]string, 0, len(j.GetTags()))
		for k := range j.GetTags() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + "=" + j.GetTags()[k]
		}
		row("Tags", strings.Join(keys, ", "))
	}
	for _, pa := range j.GetPostCopyActions() {
		v := "pending"
		if pa.GetDone() {
			v = "done"
		}
		if pa.GetError() != "" {
			v += " (last error: " + oneLine(pa.GetError()) + ")"
		}
		row("Post-copy "+pa.GetName(), v)
	}
	row("Created", ts(j.GetCreateTime()))
	row("Updated", ts(j.GetUpdateTime()))
	if j.GetFinishTime() != nil {
		row("Finished", ts(j.GetFinishTime()))
	}
	row("Revision", fmt.Sprint(j.GetRevision()))
	return tw.Flush()
}

// jobCounts renders a policy's job counts: "2 copying, 10 succeeded".
func jobCounts(cs []*replicatorv1.JobStateCount) string {
	sorted := append([]*replicatorv1.JobStateCount(nil), cs...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].GetState() < sorted[b].GetState() })
	var parts []string
	for _, c := range sorted {
		if c.GetCount() > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.GetCount(), strings.ToLower(stateName(c.GetState()))))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// writePoliciesTable prints the loaded policies.
func writePoliciesTable(w io.Writer, r *replicatorv1.ListPoliciesResponse, now time.Time) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "NAME\tENABLED\tFROM\tTO\tINTERVAL\tIMAGES\tJOBS\tLAST RECONCILE\tNEXT\tERROR")
	for _, p := range r.GetPolicies() {
		interval := "-"
		if p.GetInterval() != nil {
			interval = p.GetInterval().AsDuration().String()
		}
		next := "-"
		if t := p.GetNextReconcileTime(); t != nil {
			if d := t.AsTime().Sub(now); d > 0 {
				next = "in " + shortDuration(d)
			} else {
				next = "now"
			}
		}
		last := "-"
		if t := p.GetLastReconcileTime(); t != nil {
			last = shortDuration(now.Sub(t.AsTime())) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
			clean(p.GetName()), p.GetEnabled(), clean(p.GetSourceRegion()), clean(strings.Join(p.GetDestinationRegions(), ",")),
			interval, p.GetMatchedImages(), jobCounts(p.GetJobCounts()), last, next,
			dash(truncate(oneLine(policyError(p, now)), 60)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.GetSource() != "" {
		_, err := fmt.Fprintf(w, "\nloaded from %s\n", clean(r.GetSource()))
		return err
	}
	return nil
}

// planActionName is a PlanAction without its prefix: COPY.
func planActionName(a replicatorv1.PlanAction) string {
	return strings.TrimPrefix(a.String(), "PLAN_ACTION_")
}

// writePlanTable prints what the policies would do and a summary line.
func writePlanTable(w io.Writer, r *replicatorv1.PlanPoliciesResponse) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "POLICY\tIMAGE\tREGION\tACTION\tSIZE\tREASON")
	copies := 0
	for _, it := range r.GetItems() {
		if it.GetAction() == replicatorv1.PlanAction_PLAN_ACTION_COPY {
			copies++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d GiB\t%s\n",
			clean(it.GetPolicy()), clean(imageLabel(it.GetSourceImageId(), it.GetSourceImageName())), clean(it.GetDestinationRegion()),
			planActionName(it.GetAction()), it.GetSizeGib(), dash(oneLine(it.GetReason())))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, planSummary(copies, r))
	return err
}

// planSummary is the line under the plan: "3 copies, 60 GiB, est. 14m".
func planSummary(copies int, r *replicatorv1.PlanPoliciesResponse) string {
	noun := "copies"
	if copies == 1 {
		noun = "copy"
	}
	s := fmt.Sprintf("%d %s, %d GiB", copies, noun, r.GetCopyGib())
	if d := r.GetEstimatedDuration(); d != nil && copies > 0 {
		s += ", est. " + shortDuration(d.AsDuration())
	}
	return s
}

// policyError is the policy's last error or, when its runs go through, that
// of its destinations being retried alone ("cn-beijing: ... (retry in 30s)").
func policyError(p *replicatorv1.Policy, now time.Time) string {
	if e := p.GetLastError(); e != "" {
		return e
	}
	var out []string
	for _, d := range p.GetDestinations() {
		if d.GetLastError() == "" {
			continue
		}
		retry := ""
		if t := d.GetNextRetryTime(); t != nil {
			if dd := t.AsTime().Sub(now); dd > 0 {
				retry = " (retry in " + shortDuration(dd) + ")"
			} else {
				retry = " (retry now)"
			}
		}
		out = append(out, d.GetRegion()+": "+d.GetLastError()+retry)
	}
	return strings.Join(out, "; ")
}
