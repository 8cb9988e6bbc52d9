package main

import (
	"fmt"
	"io"
	"math"
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
	// FailedAttempts: accepted copies that ECS ended CreateFailed.
	FailedAttempts int
	// Urgent: Copy sent to the urgent job seen COPYING, emulated;
	// UrgentSeen false when it never was.
	Urgent     time.Duration
	UrgentSeen bool
}

// row is one line of the report, already formatted.
type row struct {
	name, makespan, ratio, copies, perCopy, throttled, lag, urgent, cpu, rss string
}

func fmtHours(d time.Duration) string { return fmt.Sprintf("%.2f h", d.Hours()) }

// spread formats the median of xs and, when the values differ as
// formatted, their range.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "-"
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	med := median(s)
	if fmt.Sprintf(format, s[0]) == fmt.Sprintf(format, s[len(s)-1]) {
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

// measured is one run of replicatord or of the smart script, reduced to
// what the report shows of every run.
type measured struct {
	Makespan time.Duration
	Calls    calls
	// OK copies ended Available; FailedAttempts accepted copies ended
	// CreateFailed; Failed copies were given up (final failures), of
	// which FailedThrottle by flow control.
	OK, FailedAttempts, Failed, FailedThrottle int
	Lags                                       []time.Duration
	Urgent                                     time.Duration
	UrgentSeen, HasUrgent                      bool
	CPU, RSS                                   float64 // seconds, MiB; replicatord only
}

func (r daemonRun) measured() measured {
	return measured{
		Makespan: r.Makespan, Calls: r.Calls, OK: r.Drive.Succeeded, FailedAttempts: r.FailedAttempts,
		Failed: r.Drive.Failed, FailedThrottle: r.Drive.FailedThrottle, Lags: r.Lags,
		Urgent: r.Urgent, UrgentSeen: r.UrgentSeen, HasUrgent: r.Drive.UrgentJob != "" || !r.Drive.UrgentSent.IsZero(),
		CPU: r.Usage.CPU.Seconds(), RSS: float64(r.Usage.MaxRSS) / (1 << 20),
	}
}

func (r peerRun) measured(urgent bool) measured {
	return measured{
		Makespan: r.Makespan, Calls: r.Calls, OK: r.Succeeded, FailedAttempts: r.FailedAttempts,
		Failed: r.Failed + r.refused(), FailedThrottle: refusedThrottle(r.Refused), Lags: r.Lags,
		Urgent: r.Urgent, UrgentSeen: r.UrgentSeen, HasUrgent: urgent,
	}
}

// measuredRow summarises runs: the median and, where runs differ, the
// range of each figure; the per-action split of the calls is the median
// run's (by makespan).
func measuredRow(name string, runs []measured, lb time.Duration, usage bool) row {
	var ms, ratio, pc, thr, ok, fa, failed, p50, p95, urg, cpu, rss []float64
	never := 0
	for _, r := range runs {
		ms = append(ms, r.Makespan.Hours())
		ratio = append(ratio, float64(r.Makespan)/float64(lb))
		if r.OK > 0 {
			pc = append(pc, float64(r.Calls.total())/float64(r.OK))
		}
		var t int64
		for _, n := range r.Calls.throttled() {
			t += n
		}
		thr = append(thr, float64(t))
		ok, fa, failed = append(ok, float64(r.OK)), append(fa, float64(r.FailedAttempts)), append(failed, float64(r.Failed))
		if len(r.Lags) > 0 {
			p50, p95 = append(p50, percentile(r.Lags, 50).Minutes()), append(p95, percentile(r.Lags, 95).Minutes())
		}
		switch {
		case r.UrgentSeen:
			urg = append(urg, r.Urgent.Minutes())
		case r.HasUrgent:
			never++
		}
		cpu, rss = append(cpu, r.CPU), append(rss, r.RSS)
	}
	med := medianMeasured(runs)
	out := row{
		name:      name,
		makespan:  spread(ms, "%.2f h"),
		ratio:     spread(ratio, "%.3f"),
		copies:    fmt.Sprintf("%s / %s / %s (%d)", spread(ok, "%.0f"), spread(fa, "%.0f"), spread(failed, "%.0f"), med.FailedThrottle),
		perCopy:   perCopy(med.Calls, med.OK) + " (total " + spread(pc, "%.2f") + ")",
		throttled: spread(thr, "%.0f"),
		lag:       "-",
		urgent:    "-",
		cpu:       "-",
		rss:       "-",
	}
	if codes := med.Calls.throttled(); len(codes) > 0 {
		out.throttled += " (median run: " + fmtThrottled(codes) + ")"
	}
	if med.Failed > 0 || med.OK == 0 {
		out.ratio += " *"
	}
	if len(p50) > 0 {
		out.lag = spread(p50, "%.1f min") + " / " + spread(p95, "%.1f min")
	}
	if len(urg) > 0 {
		out.urgent = spread(urg, "%.1f min")
	}
	if never > 0 {
		out.urgent = strings.TrimPrefix(out.urgent+fmt.Sprintf(", never started in %d of %d runs", never, len(runs)), "-, ")
	}
	if usage {
		out.cpu, out.rss = spread(cpu, "%.1f"), spread(rss, "%.0f")
	}
	return out
}

func medianMeasured(runs []measured) measured {
	s := slices.Clone(runs)
	sort.SliceStable(s, func(a, b int) bool { return s[a].Makespan < s[b].Makespan })
	return s[(len(s)-1)/2]
}

// daemonRow summarises the replicatord runs.
func daemonRow(name string, runs []daemonRun, lb time.Duration) row {
	ms := make([]measured, len(runs))
	for i, r := range runs {
		ms[i] = r.measured()
	}
	return measuredRow(name, ms, lb, true)
}

// etcdRow summarises the runs on etcd, next to bbolt's: its ratio cell
// also shows the difference of the median ratios (issue 14: within 0.01).
func etcdRow(name string, runs, bbolt []daemonRun, lb time.Duration) row {
	r := daemonRow(name, runs, lb)
	r.ratio += fmt.Sprintf(" (%+.3f vs bbolt)", medianRatio(runs, lb)-medianRatio(bbolt, lb))
	return r
}

func etcdName(o *options) string {
	name := fmt.Sprintf("replicatord on etcd (%d members", o.etcdMembers)
	if o.etcdMembers == 1 {
		name = "replicatord on etcd (1 member"
	}
	if o.replicas > 1 {
		name += fmt.Sprintf(", %d replicas", o.replicas)
	}
	return name + ")"
}

// medianRatio is the median of the runs' makespan / lb, as the ratio
// column shows it.
func medianRatio(runs []daemonRun, lb time.Duration) float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = float64(r.Makespan) / float64(lb)
	}
	return median(xs)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// printEtcdNote says how the etcd row compares with bbolt's.
func printEtcdNote(out io.Writer, o *options, runs, bbolt []daemonRun, lb time.Duration) {
	e, b := medianRatio(runs, lb), medianRatio(bbolt, lb)
	verdict := "within"
	if math.Abs(e-b) > 0.01 {
		verdict = "NOT within"
	}
	fmt.Fprintf(out, "%s: a fresh cluster of real etcd processes on loopback (fsync on) per run, store.backend etcd, the same fleet, emulator and scheduler settings;\n"+
		"  makespan / lower bound %.3f vs %.3f on bbolt (medians of %d runs): %+.3f, %s issue 14's target of 0.01.\n",
		etcdName(o), e, b, o.runs, e-b, verdict)
}

// scriptRow summarises the smart script's runs.
func scriptRow(runs []peerRun, lb time.Duration, urgent bool) row {
	ms := make([]measured, len(runs))
	for i, r := range runs {
		ms[i] = r.measured(urgent)
	}
	return measuredRow("smart script (SDK over HTTP, real)", ms, lb, false)
}

func modelRow(name string, m modelRun, lb time.Duration) row {
	c := calls(m.Calls)
	failed := fmt.Sprintf("%d / 0 / %d (%d)", m.Succeeded, m.Failed, m.FailedThrottle)
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
		urgent:    "-",
		cpu:       "-",
		rss:       "-",
	}
}

var header = row{"", "makespan (emulated)", "makespan / lower bound", "copies ok / failed attempts / final failures (throttled)", "API calls per copy ok: CopyImage / DescribeImages / other = total", "throttled responses", "completion detection lag p50 / p95 (emulated)", "urgent copy to COPYING (emulated)", "daemon CPU s", "peak RSS MiB"}

func (r row) cells() []string {
	return []string{r.name, r.makespan, r.ratio, r.copies, r.perCopy, r.throttled, r.lag, r.urgent, r.cpu, r.rss}
}

func fmtMinutes(d time.Duration) string { return fmt.Sprintf("%.1f min", d.Minutes()) }

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
		copies:    fmt.Sprintf("%d started (%d of them ended CreateFailed), %d refused, %d cancelled, %d never sent (halted builds); completion unknown", r.Accepted-r.Cancelled, r.FailedAttempts, r.refused(), r.Cancelled, r.notSent()),
		perCopy:   perCopy(r.Calls, r.Accepted-r.Cancelled) + " (per copy started)",
		throttled: fmtThrottled(r.Calls.throttled()),
		lag:       "never seen",
		urgent:    "-",
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
	// Busy is the slot time of every accepted copy, failed attempts'
	// included: the work the client made ECS do here.
	Busy time.Duration
	// IdleBeforeLastStart is slot time left idle while copies were still
	// to start in this region: lost capacity.
	IdleBeforeLastStart time.Duration
	// Cover is how many polls would see every end (failed attempts'
	// included) within coverLag, for a client that knew when each copy
	// ends: the fewest windows of coverLag that hold all ends (greedy).
	// It is the floor of the polls the detection-lag target needs.
	Cover int
	// LastSeen is from the region's last end to the first poll after it
	// (emulated): how late the client learned that the region was done.
	// -1 when no poll came after it.
	LastSeen time.Duration
}

// regionStats replays the trace of one run.
func regionStats(f *fleet, tr *trace, b bound, t0 time.Time, scale float64, fails map[string]float64) []regionStat {
	rep := replay(f, tr, t0, scale, nil, fails)
	tr.mu.Lock()
	polls := map[string][]time.Time{}
	for r, ps := range tr.polls {
		polls[r] = slices.Clone(ps)
	}
	tr.mu.Unlock()
	var out []regionStat
	for _, r := range f.Regions {
		spans := rep[r]
		var busy, finish, lastStart time.Duration
		for _, s := range spans {
			busy += s.end - s.start
			finish = max(finish, s.end)
			lastStart = max(lastStart, s.start)
		}
		var busyBefore time.Duration
		for _, s := range spans {
			busyBefore += max(0, min(s.end, lastStart)-s.start)
		}
		st := regionStat{Region: r, Copies: len(spans), Polls: len(polls[r]), Finish: finish, Bound: b.PerRegion[r], Busy: busy,
			IdleBeforeLastStart: time.Duration(f.Slots)*lastStart - busyBefore}
		st.Cover = cover(spans, coverLag)
		st.LastSeen = -1
		// Classify each poll by what happened since the previous one.
		prev := time.Duration(-1)
		for _, pt := range polls[r] {
			at := time.Duration(float64(pt.Sub(t0)) * scale)
			ended, added := false, false
			for _, s := range spans {
				if s.end > prev && s.end <= at {
					ended = true
				}
				if s.at > prev && s.at <= at {
					added = true
				}
			}
			if at >= finish && st.LastSeen < 0 {
				st.LastSeen = at - finish
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

// coverLag is issue 12's p95 completion detection lag target.
const coverLag = 15 * time.Minute

// cover is the fewest polls that see every span's end within lag: the
// first poll lag after the first end, the next lag after the first end
// it missed, and so on (greedy, which is optimal for windows on a line).
func cover(spans []replayedCopy, lag time.Duration) int {
	ends := make([]time.Duration, 0, len(spans))
	for _, s := range spans {
		ends = append(ends, s.end)
	}
	slices.Sort(ends)
	n := 0
	for i := 0; i < len(ends); n++ {
		poll := ends[i] + lag
		for i < len(ends) && ends[i] <= poll {
			i++
		}
	}
	return n
}

func printRegions(w io.Writer, stats []regionStat) {
	fmt.Fprintf(w, "%-16s %7s %7s %22s %10s %8s %12s %16s %10s %13s\n", "region", "copies", "polls", "found end/submit/none", "finish", "/bound", "utilization", "idle slot-hours", "last seen", "polls needed")
	for _, s := range stats {
		ratio := 0.0
		if s.Bound > 0 {
			ratio = float64(s.Finish) / float64(s.Bound)
		}
		split := fmt.Sprintf("%d/%d/%d", s.PollsDone, s.PollsAfterSubmit, s.Polls-s.PollsDone-s.PollsAfterSubmit)
		seen := "never"
		if s.LastSeen >= 0 {
			seen = fmt.Sprintf("+%.1f min", s.LastSeen.Minutes())
		}
		fmt.Fprintf(w, "%-16s %7d %7d %22s %10s %8.3f %11.1f%% %16.2f %10s %13d\n", s.Region, s.Copies, s.Polls, split, fmtHours(s.Finish), ratio, 100*s.Utilization, s.IdleBeforeLastStart.Hours(), seen, s.Cover)
	}
	polls, need, copies := 0, 0, 0
	for _, s := range stats {
		polls, need, copies = polls+s.Polls, need+s.Cover, copies+s.Copies
	}
	if copies > 0 {
		fmt.Fprintf(w, "polls needed: to see every end within %s, knowing when each ends, %d polls in all (%.2f per accepted copy) against %d made (%.2f)\n",
			fmtMinutes(coverLag), need, float64(need)/float64(copies), polls, float64(polls)/float64(copies))
	}
}

// workBound is the bound of the work a client made ECS do: the largest
// region's busy slot time over its slots, at least the fleet's own bound.
// With failures it differs between clients, because a copy given up makes
// no further attempts: makespan over it compares their scheduling of the
// work each chose, where the lower bound compares the makespans.
func workBound(stats []regionStat, slots int, b bound) (time.Duration, string) {
	best, region := b.Makespan, b.Region
	for _, s := range stats {
		if w := s.Busy / time.Duration(max(slots, 1)); w > best {
			best, region = w, s.Region
		}
	}
	return best, region
}

// printWorkBound prints, when copies failed, the bound of the work the
// client made ECS do and its makespan over it.
func printWorkBound(w io.Writer, who string, makespan time.Duration, stats []regionStat, slots int, b bound) {
	wb, region := workBound(stats, slots, b)
	fmt.Fprintf(w, "%s, bound of the work it made ECS do (failed attempts included): %s (region %s); makespan / it = %.3f\n",
		who, fmtHours(wb), region, float64(makespan)/float64(wb))
}
