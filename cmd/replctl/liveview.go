package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// The live view is a pure function of (jobs, now, options) → lines, so every
// frame can be pinned by a golden file; liveScreen (screen.go) only moves the
// cursor and writes the lines.

const (
	groupByPolicy = "policy"
	groupByImage  = "image"

	// maxFailedShown caps the failed jobs listed per group; the rest are
	// counted in the summary line.
	maxFailedShown = 5
	minBar, maxBar = 10, 30
	stateW         = 10 // len("CANCELLING")
	etaW           = 10 // "ETA 1h05m", "retry 59s"
)

// viewOptions shape one frame.
type viewOptions struct {
	width, height int    // terminal size; height 0 = unlimited
	groupBy       string // groupByPolicy (default) or groupByImage
	status        string // a note shown under the jobs (reconnecting ...)
	empty         string // shown when there are no jobs
}

type viewGroup struct {
	key, title string
	jobs       []*trackedJob
}

// renderFrame returns the lines of one live-view frame. Grouped by policy,
// each policy's jobs are listed under a line per source image; grouped by
// image, the image is the group. Either way a job line is the destination
// region, state, percent, bar, ETA and ECS status word, and finished jobs
// collapse into one summary line per group.
func renderFrame(jobs []*trackedJob, now time.Time, o viewOptions) []string {
	width := o.width
	if width <= 0 {
		width = 80
	}
	groups := groupJobs(jobs, o.groupBy)
	subheads := o.groupBy != groupByImage
	indent := "  "
	if subheads {
		indent = "    "
	}

	// Column widths come from every job in the view, finished ones included,
	// so columns do not jump when a job finishes. The bar takes what is
	// left; on a narrow terminal it goes, and what is still too long is cut
	// at the right, where the least important columns are.
	regW, cloudW := 0, 1
	for _, tj := range jobs {
		regW = max(regW, displayWidth(tj.job.GetDestinationRegion()))
		cloudW = max(cloudW, displayWidth(tj.job.GetCloudStatus()))
	}
	fixed := len(indent) + regW + 2 + stateW + 2 + 4 + 2 + 1 + etaW + 2 + cloudW
	bar := min(maxBar, width-1-fixed)
	if bar < minBar {
		bar = 0
	}

	var lines []string
	for _, g := range groups {
		lines = append(lines, g.title)
		var succeeded, failed, cancelled int
		lastImage := ""
		for _, tj := range g.jobs {
			j := tj.job
			switch j.GetState() {
			case replicatorv1.JobState_JOB_STATE_SUCCEEDED:
				succeeded++
				continue
			case replicatorv1.JobState_JOB_STATE_CANCELLED:
				cancelled++
				continue
			case replicatorv1.JobState_JOB_STATE_FAILED:
				failed++
				if failed > maxFailedShown {
					continue
				}
			}
			if subheads && j.GetSourceImageId() != lastImage {
				lastImage = j.GetSourceImageId()
				lines = append(lines, "  "+imageLabel(j.GetSourceImageId(), j.GetSourceImageName()))
			}
			if o.height > 1 && len(lines) >= o.height {
				// Below the screen: only counted, so a frame of thousands
				// of running jobs stays cheap.
				lines = append(lines, "")
				continue
			}
			var b strings.Builder
			b.WriteString(indent)
			b.WriteString(pad(j.GetDestinationRegion(), regW) + "  ")
			b.WriteString(pad(stateName(j.GetState()), stateW) + "  ")
			if j.GetState() == replicatorv1.JobState_JOB_STATE_FAILED {
				b.WriteString("✗ " + oneLine(jobError(j)))
			} else {
				lp := tj.progress(now)
				b.WriteString(percentText(lp.percent, lp.estimated, observedPercent(j)) + "  ")
				if bar > 0 {
					b.WriteString(progressBar(lp.percent, bar) + " ")
				}
				fmt.Fprintf(&b, "%s  %s", pad(etaText(tj, lp, now), etaW), dash(j.GetCloudStatus()))
			}
			lines = append(lines, strings.TrimRight(b.String(), " "))
		}
		if s := summary(succeeded, failed, cancelled); s != "" {
			if failed > maxFailedShown {
				s += fmt.Sprintf(" (%d failed not listed)", failed-maxFailedShown)
			}
			lines = append(lines, "  "+s)
		}
	}
	if len(groups) == 0 && o.empty != "" {
		lines = append(lines, o.empty)
	}
	if o.status != "" {
		lines = append(lines, o.status)
	}
	// Leave the last row free: the cursor sits there between frames, and a
	// frame taller than the screen could not be redrawn in place.
	if o.height > 1 && len(lines) > o.height-1 {
		keep := o.height - 2
		more := len(lines) - keep
		lines = append(lines[:keep:keep], fmt.Sprintf("… %d more lines (enlarge the terminal, or use --group-by, filters or -o json)", more))
	}
	for i, l := range lines {
		// Never write into the last column: terminals wrap there, and a
		// wrapped line breaks the cursor-up arithmetic of the redraw.
		// Text from ECS (image names, messages) is made safe here, once.
		lines[i] = truncate(safe(l), width-1)
	}
	return lines
}

// groupJobs groups jobs by policy (ad hoc first) or by source image.
func groupJobs(jobs []*trackedJob, by string) []viewGroup {
	idx := map[string]int{}
	var groups []viewGroup
	for _, tj := range jobs {
		j := tj.job
		key := j.GetPolicy()
		if by == groupByImage {
			key = j.GetSourceImageId()
		}
		i, ok := idx[key]
		if !ok {
			i = len(groups)
			idx[key] = i
			title := "ad hoc"
			switch {
			case by == groupByImage:
				title = "image " + imageLabel(j.GetSourceImageId(), j.GetSourceImageName()) + " from " + j.GetSourceRegion()
			case key != "":
				title = "policy " + key
			}
			groups = append(groups, viewGroup{key: key, title: title})
		}
		groups[i].jobs = append(groups[i].jobs, tj)
	}
	sort.Slice(groups, func(a, b int) bool { return groups[a].key < groups[b].key })
	for _, g := range groups {
		sort.SliceStable(g.jobs, func(a, b int) bool {
			ja, jb := g.jobs[a].job, g.jobs[b].job
			if ja.GetSourceImageId() != jb.GetSourceImageId() {
				return ja.GetSourceImageId() < jb.GetSourceImageId()
			}
			if ja.GetDestinationRegion() != jb.GetDestinationRegion() {
				return ja.GetDestinationRegion() < jb.GetDestinationRegion()
			}
			return ja.GetId() < jb.GetId()
		})
	}
	return groups
}

// progressBar draws p percent of n cells.
func progressBar(p int32, n int) string {
	p = min(max(p, 0), 100)
	full := int(p) * n / 100
	return strings.Repeat("█", full) + strings.Repeat("░", n-full)
}

// etaText is the ETA column: ETA while copying, the retry time while a job
// waits to be retried, empty otherwise. The ETA is the time left of lp,
// counting down between the daemon's reports; from a daemon that does not
// report observed_remaining it comes from the rate replctl observed, or the
// job's remaining.
func etaText(tj *trackedJob, lp liveProgress, now time.Time) string {
	j := tj.job
	if t := j.GetNextAttemptTime(); t != nil && t.AsTime().After(now) && !terminal(j.GetState()) {
		return "retry " + shortDuration(t.AsTime().Sub(now))
	}
	if j.GetState() != replicatorv1.JobState_JOB_STATE_COPYING {
		return ""
	}
	if lp.extrapolated {
		return "ETA " + shortDuration(lp.left)
	}
	d, ok := tj.est.eta(now, j.GetRemaining().AsDuration(), j.GetRemaining() != nil)
	if !ok {
		return "ETA ?"
	}
	return "ETA " + shortDuration(d)
}

// summary is the line finished jobs collapse into:
// "✓ 12 succeeded, ✗ 1 failed, 2 cancelled".
func summary(succeeded, failed, cancelled int) string {
	var parts []string
	if succeeded > 0 {
		parts = append(parts, fmt.Sprintf("✓ %d succeeded", succeeded))
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("✗ %d failed", failed))
	}
	if cancelled > 0 {
		parts = append(parts, fmt.Sprintf("%d cancelled", cancelled))
	}
	return strings.Join(parts, ", ")
}
