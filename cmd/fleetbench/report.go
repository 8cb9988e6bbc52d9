package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// calls summarises API calls by action and answer code.
type calls map[string]map[string]int64

func (c calls) action(a string) int64 {
	var n int64
	for _, v := range c[a] {
		n += v
	}
	return n
}

func (c calls) total() int64 {
	var n int64
	for a := range c {
		if !strings.HasPrefix(a, "(") { // (none), (unknown): not ECS actions
			n += c.action(a)
		}
	}
	return n
}

// throttled counts Throttling* answers by code.
func (c calls) throttled() map[string]int64 {
	out := map[string]int64{}
	for _, codes := range c {
		for code, n := range codes {
			if strings.HasPrefix(code, "Throttling") {
				out[code] += n
			}
		}
	}
	return out
}

// daemonRun is one measured run of replicatord.
type daemonRun struct {
	Makespan time.Duration // emulated
	Drive    *driveResult
	Calls    calls
	Usage    usage
	Regions  []regionStat
	// Lags: Available in ECS to SUCCEEDED seen on the Watch, per copy.
	Lags []time.Duration
}

// row is one line of the report, already formatted.
type row struct {
	name, makespan, ratio, copies, perCopy, throttled, lag, cpu, rss string
}

func fmtHours(d time.Duration) string { return fmt.Sprintf("%.2f h", d.Hours()) }

// spread formats the median of xs and, with more than one value, its range.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "-"
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(s) == 1 {
		return fmt.Sprintf(format, med)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", med, s[0], s[len(s)-1])
}

func perCopy(c calls, finished int) string {
	if finished == 0 {
		return "-"
	}
	f := float64(finished)
	other := c.total() - c.action("CopyImage") - c.action("DescribeImages")
	return fmt.Sprintf("%.2f / %.2f / %.2f = %.2f", float64(c.action("CopyImage"))/f, float64(c.action("DescribeImages"))/f, float64(other)/f, float64(c.total())/f)
}

func fmtThrottled(m map[string]int64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, code := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%d %s", m[code], code))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// daemonRow summarises the replicatord runs: medians and ranges.
func daemonRow(runs []daemonRun, lb time.Duration) row {
	var ms, ratio, pc, cpu, rss []float64
	for _, r := range runs {
		ms = append(ms, r.Makespan.Hours())
		ratio = append(ratio, float64(r.Makespan)/float64(lb))
		if r.Drive.Succeeded > 0 {
			pc = append(pc, float64(r.Calls.total())/float64(r.Drive.Succeeded))
		}
		cpu = append(cpu, r.Usage.CPU.Seconds())
		rss = append(rss, float64(r.Usage.MaxRSS)/(1<<20))
	}
	// Per-action figures and counts come from the median run by makespan.
	med := medianRun(runs)
	thr := med.Calls.throttled()
	copies := fmt.Sprintf("%d / %d (%d)", med.Drive.Succeeded, med.Drive.Failed, med.Drive.FailedThrottle)
	return row{
		name:      "replicatord",
		makespan:  spread(ms, "%.2f h"),
		ratio:     spread(ratio, "%.3f"),
		copies:    copies,
		perCopy:   perCopy(med.Calls, med.Drive.Succeeded) + " (total " + spread(pc, "%.2f") + ")",
		throttled: fmtThrottled(thr),
		lag:       fmtLag(med.Lags),
		cpu:       spread(cpu, "%.1f"),
		rss:       spread(rss, "%.0f"),
	}
}

func medianRun(runs []daemonRun) daemonRun {
	s := slices.Clone(runs)
	sort.Slice(s, func(a, b int) bool { return s[a].Makespan < s[b].Makespan })
	return s[(len(s)-1)/2]
}

func modelRow(name string, m modelRun, lb time.Duration) row {
	c := calls(m.Calls)
	failed := fmt.Sprintf("%d / %d (%d)", m.Succeeded, m.Failed, m.FailedThrottle)
	if m.FailedTimeout > 0 {
		failed += fmt.Sprintf(", %d timed out", m.FailedTimeout)
	}
	if m.FailedDenied > 0 {
		failed += fmt.Sprintf(", %d denied", m.FailedDenied)
	}
	ratio := fmt.Sprintf("%.3f", float64(m.Makespan)/float64(lb))
	if m.Failed > 0 {
		ratio += " *" // over the copies that succeeded only
	}
	return row{
		name:      name + " (modeled)",
		makespan:  fmtHours(m.Makespan),
		ratio:     ratio,
		copies:    failed,
		perCopy:   perCopy(c, m.Succeeded),
		throttled: fmtThrottled(c.throttled()),
		lag:       "-",
		cpu:       "-",
		rss:       "-",
	}
}

var header = row{"", "makespan (emulated)", "makespan / lower bound", "copies ok / failed (throttled)", "API calls per finished copy: CopyImage / DescribeImages / other = total", "throttled responses", "completion detection lag p50 / p95 (emulated)", "daemon CPU s", "peak RSS MiB"}

func (r row) cells() []string {
	return []string{r.name, r.makespan, r.ratio, r.copies, r.perCopy, r.throttled, r.lag, r.cpu, r.rss}
}

// fmtLag formats the p50 and p95 of the completion detection lags.
func fmtLag(lags []time.Duration) string {
	if len(lags) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s", fmtMinutes(percentile(lags, 50)), fmtMinutes(percentile(lags, 95)))
}

func fmtMinutes(d time.Duration) string { return fmt.Sprintf("%.1f min", d.Minutes()) }

// scriptRow is the smart script's run.
func scriptRow(r peerRun, lb time.Duration) row {
	ratio := fmt.Sprintf("%.3f", float64(r.Makespan)/float64(lb))
	if r.Failed > 0 || r.Succeeded < r.Copies {
		ratio += " *"
	}
	return row{
		name:      "smart script (SDK over HTTP, real)",
		makespan:  fmtHours(r.Makespan),
		ratio:     ratio,
		copies:    fmt.Sprintf("%d / %d (%d)", r.Succeeded, r.Failed+r.refused(), refusedThrottle(r.Refused)),
		perCopy:   perCopy(r.Calls, r.Succeeded),
		throttled: fmtThrottled(r.Calls.throttled()),
		lag:       fmtLag(r.Lags),
		cpu:       "-",
		rss:       "-",
	}
}

// packerRow is Packer's fire-and-forget run: it never sees a copy end, so
// its makespan is ECS's queue's and its calls are per copy started.
func packerRow(r peerRun, lb time.Duration) row {
	ratio := fmt.Sprintf("%.3f", float64(r.Makespan)/float64(lb))
	if r.Accepted-r.Cancelled < r.Copies {
		ratio += " *"
	}
	return row{
		name:      "packer, fire and forget (SDK over HTTP, real)",
		makespan:  fmtHours(r.Makespan) + " (ECS queue)",
		ratio:     ratio,
		copies:    fmt.Sprintf("%d started, %d refused, %d cancelled, %d never sent (halted builds); completion unknown", r.Accepted-r.Cancelled, r.refused(), r.Cancelled, r.notSent()),
		perCopy:   perCopy(r.Calls, r.Accepted-r.Cancelled) + " (per copy started)",
		throttled: fmtThrottled(r.Calls.throttled()),
		lag:       "never seen",
		cpu:       "-",
		rss:       "-",
	}
}

// refused counts the CopyImage calls refused (not retried).
func (r peerRun) refused() int {
	n := 0
	for _, k := range r.Refused {
		n += k
	}
	return n
}

// notSent counts the copies a peer never asked for (Packer's halted
// builds stop at their first refusal).
func (r peerRun) notSent() int { return r.Copies - r.Accepted - r.refused() }

func refusedThrottle(m map[string]int) int {
	n := 0
	for code, k := range m {
		if strings.HasPrefix(code, "Throttling") {
			n += k
		}
	}
	return n
}

// printTable prints rows as an aligned plain-text table.
func printTable(w io.Writer, rows []row) {
	all := append([]row{header}, rows...)
	width := make([]int, len(header.cells()))
	for _, r := range all {
		for i, c := range r.cells() {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for n, r := range all {
		var b strings.Builder
		for i, c := range r.cells() {
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if n == 0 {
			var u strings.Builder
			for i := range width {
				u.WriteString(strings.Repeat("-", width[i]) + "  ")
			}
			fmt.Fprintln(w, strings.TrimRight(u.String(), " "))
		}
	}
}

// printMarkdown prints rows as the BENCHMARKS.md table.
func printMarkdown(w io.Writer, rows []row) {
	h := header.cells()
	h[0] = "run"
	fmt.Fprintf(w, "| %s |\n", strings.Join(h, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(h)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r.cells(), " | "))
	}
}

// regionStat is one destination region of a daemon run, rebuilt from the
// trace of accepted copies: ECS runs them first come, first served, so
// their start and end follow from the acceptance times and durations.
type regionStat struct {
	Region string
	Copies int
	Polls  int
	// PollsDone counts polls that found a copy ended since the previous
	// poll; PollsAfterSubmit those that did not but followed a newly
	// accepted copy; the rest found nothing new.
	PollsDone, PollsAfterSubmit int
	Finish                      time.Duration // emulated, from the first submit
	Bound                       time.Duration
	Utilization                 float64 // busy slot time / (slots × finish)
	// IdleBeforeLastStart is slot time left idle while copies were still
	// to start in this region: lost capacity.
	IdleBeforeLastStart time.Duration
}

// regionStats replays the trace of one run.
func regionStats(f *fleet, tr *trace, b bound, t0 time.Time, scale float64) []regionStat {
	size := map[string]int64{}
	for _, im := range f.Images {
		size[im.ID] = im.SizeGiB
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []regionStat
	for _, r := range f.Regions {
		acc := tr.copies[r]
		free := make([]time.Duration, f.Slots) // emulated, from t0
		var busy, finish, lastStart time.Duration
		type span struct{ start, end time.Duration }
		var spans []span
		for _, a := range acc {
			at := time.Duration(float64(a.at.Sub(t0)) * scale)
			first := 0
			for i := range free {
				if free[i] < free[first] {
					first = i
				}
			}
			start := max(at, free[first])
			d := f.duration(size[a.source])
			free[first] = start + d
			busy += d
			finish = max(finish, start+d)
			lastStart = max(lastStart, start)
			spans = append(spans, span{start, start + d})
		}
		var busyBefore time.Duration
		for _, s := range spans {
			busyBefore += max(0, min(s.end, lastStart)-s.start)
		}
		st := regionStat{Region: r, Copies: len(acc), Polls: len(tr.polls[r]), Finish: finish, Bound: b.PerRegion[r],
			IdleBeforeLastStart: time.Duration(f.Slots)*lastStart - busyBefore}
		// Classify each poll by what happened since the previous one.
		prev := time.Duration(-1)
		for _, pt := range tr.polls[r] {
			at := time.Duration(float64(pt.Sub(t0)) * scale)
			ended, added := false, false
			for i, s := range spans {
				if s.end > prev && s.end <= at {
					ended = true
				}
				if a := time.Duration(float64(acc[i].at.Sub(t0)) * scale); a > prev && a <= at {
					added = true
				}
			}
			switch {
			case ended:
				st.PollsDone++
			case added:
				st.PollsAfterSubmit++
			}
			prev = at
		}
		if finish > 0 {
			st.Utilization = float64(busy) / (float64(f.Slots) * float64(finish))
		}
		out = append(out, st)
	}
	return out
}

func printRegions(w io.Writer, stats []regionStat) {
	fmt.Fprintf(w, "%-16s %7s %7s %22s %10s %8s %12s %16s\n", "region", "copies", "polls", "found end/submit/none", "finish", "/bound", "utilization", "idle slot-hours")
	for _, s := range stats {
		ratio := 0.0
		if s.Bound > 0 {
			ratio = float64(s.Finish) / float64(s.Bound)
		}
		split := fmt.Sprintf("%d/%d/%d", s.PollsDone, s.PollsAfterSubmit, s.Polls-s.PollsDone-s.PollsAfterSubmit)
		fmt.Fprintf(w, "%-16s %7d %7d %22s %10s %8.3f %11.1f%% %16.2f\n", s.Region, s.Copies, s.Polls, split, fmtHours(s.Finish), ratio, 100*s.Utilization, s.IdleBeforeLastStart.Hours())
	}
}
