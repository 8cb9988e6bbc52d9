// Command fleetbench measures how close replicatord's scheduler comes to the
// shortest makespan ECS's quotas allow, and at what API cost, on a fleet of
// images copied to several regions; and compares it with the way Terraform
// and Packer copy the same fleet and with a user's smart script.
//
//	go run ./cmd/fleetbench [--runs 3] [--markdown] [--fail-rate 0.1 | --copy-conflict | --images 400] [--etcd tools/bin/etcd]
//
// # Design
//
// The fleet (200 images of 20–180 GiB in cn-hangzhou, to 6 regions) is
// built from a seed. The ECS emulator (internal/ecsemu) serves it in this
// process on a real HTTP listener, time-scaled so that a run takes about a
// minute; replicatord is built and run as a separate process against it,
// so that its CPU time and peak RSS are its own. The fleet is submitted over
// gRPC (one detached Copy per image, to every region) and one Watch follows
// the jobs until all are terminal.
//
// Halfway through (at half the fleet's lower bound, emulated) one urgent
// ad-hoc copy of an image outside the fleet goes to the first region: a
// Copy RPC for replicatord (the API has no priority field; ad-hoc copies,
// the fleet's included, already go before policy backfill), a CopyImage
// at once for the script. Its start latency is Copy to the Watch showing
// the job COPYING, and for the script CopyImage to the first poll that saw
// it Creating. It counts as a copy in every figure, and in its region's
// lower bound (lowerBound).
//
// Time scaling changes every rate by the same factor: the emulator's copy
// durations are divided by the scale, so its flow control (1000 calls per
// 60 s per action) is multiplied by it, and so are the daemon's API rate
// and poll bounds; the flow-control bucket keeps ECS's real burst of
// 1,000 calls. Makespans are reported in emulated time.
//
// The lower bound is per destination region the larger of the longest copy
// and the total copy time over the slots (plus, with --copy-conflict, the
// longest chain of one image's copies); the fleet's is the largest region's.
//
// Two peers run for real over HTTP against a fresh emulator of their own,
// through internal/cloud/aliyun's Provider (the vendor SDK behind our thin
// adapter; peers.go): the smart script of issue 12 (every copy submitted at
// once, largest first; one DescribeImages per region for the oldest ≤ 100
// pending copies, the next clamp(W × 1 min, 1 min, 45 min) later; a
// CreateFailed copy deleted and sent once more; copy conflicts sent again
// when the image's copy ends), run --runs times like the daemon; and
// Packer as its plugin's code behaves (CopyImage per region, fire and
// forget: its makespan is ECS's queue's, and it never learns whether its
// copies ended), run once. Terraform's pattern polls too often to run for
// real at this scale, so it runs in a discrete-event model of ECS written
// here (model.go, tools.go), labelled "modeled". Packer and Terraform make
// no urgent copy; their rows are ratios to the fleet's bound without it.
//
// With --fail-rate the emulator ends that share of copies CreateFailed
// (seeded); the replay of ECS's queue (replay) ends those copies early,
// from the emulator's CopyFailures, and the report counts for replicatord
// and the script the copies that ended Available, the failed attempts and
// the copies given up. The Terraform model ignores it. Failures add work,
// and a copy given up adds less, so each client's run line also gives the
// bound of the work it made ECS do (workBound: the busiest region's slot
// time, failed attempts included, over its slots) and its makespan over it.
//
// With -v each client's run gets a per-region table replayed from the
// accepted CopyImage calls and the polls (regionStats): finish, slot
// utilization, idle slot time, what each poll found, how late the last end
// was seen, and the polls a client that knew every end would need to see
// each within 15 minutes, the detection-lag target (cover); a daemon run
// also gets its detection lag p50 / p95, so one run can be read against
// that target without the table.
//
// With --etcd (an etcd server binary) every run also runs replicatord with
// store.backend etcd (issue 14) on a fresh emulator: same fleet, scale and
// scheduler settings, over a fresh cluster of --etcd-members real etcd
// processes on loopback (etcd.go: fsync on, own data directories under
// the run's, killed and removed after it; ready once a linearizable read
// answers). The daemon is replica r1 and the fleet is submitted once it
// leads; --replicas 2 adds a follower, r2. Its row, "replicatord on etcd",
// is summarised like replicatord's and shows the difference of the median
// ratios to the lower bound from bbolt's (issue 14's target: within 0.01).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/policy"
)

type options struct {
	images, regions, slots, runs, lookahead int
	seed                                    uint64
	scale                                   float64
	wallTarget                              time.Duration
	copyConflict, keep, markdown, verbose   bool
	failRate                                float64
	daemon                                  string
	rate                                    float64
	startup                                 time.Duration
	throttle                                float64
	tfTimeout                               time.Duration
	pollMin, pollMax                        time.Duration
	lookaheadTime, detectionLag             time.Duration
	timeout                                 time.Duration
	// etcd: an etcd server binary; with it every run also runs
	// replicatord on a fresh cluster of etcdMembers, with replicas daemons.
	etcd                  string
	etcdMembers, replicas int
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("fleetbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.images, "images", 200, "source images in the fleet")
	fs.IntVar(&o.regions, "regions", len(allDestinations), fmt.Sprintf("destination regions (1-%d, taken in order from %v)", len(allDestinations), allDestinations))
	fs.IntVar(&o.slots, "slots", ecsemu.DefaultCopySlotsPerRegion, "ECS copy slots per destination region")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the fleet (sizes and ids) and of the emulator")
	fs.Float64Var(&o.scale, "time-scale", 0, "emulated seconds per wall second; 0 = chosen so that a replicatord run at the lower bound takes --wall-target")
	fs.DurationVar(&o.wallTarget, "wall-target", time.Minute, "wall time of a run at the lower bound, when --time-scale is 0")
	fs.BoolVar(&o.copyConflict, "copy-conflict", false, "ECS refuses concurrent copies of one source image (OperationDenied.ImageCopyConflict)")
	fs.Float64Var(&o.failRate, "fail-rate", 0, "share of copies (0..1) that ECS ends CreateFailed (seeded by --seed)")
	fs.IntVar(&o.runs, "runs", 1, "runs of replicatord and of the smart script; the report shows the median and the range")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (config, state, daemon log)")
	fs.StringVar(&o.daemon, "daemon", "", "use this replicatord binary instead of building one")
	fs.BoolVar(&o.markdown, "markdown", false, "also print the table as Markdown (the BENCHMARKS.md table)")
	fs.BoolVar(&o.verbose, "v", false, "print per-run and per-region details")
	fs.Float64Var(&o.rate, "copy-rate", ecsemu.DefaultRateMiBps, "throughput of one copy, MiB/s")
	fs.DurationVar(&o.startup, "startup", ecsemu.DefaultStartupDelay, "start-up time of a copy (emulated)")
	fs.Float64Var(&o.throttle, "throttle", ecsemu.DefaultThrottleRate, "ECS flow control: calls per 60 emulated seconds per action")
	fs.IntVar(&o.lookahead, "lookahead", -1, "replicatord scheduler.lookahead; -1 = the daemon's default")
	fs.DurationVar(&o.pollMin, "poll-min", policy.DefaultPollMin, "replicatord scheduler.poll_min in emulated time (divided by the time scale)")
	fs.DurationVar(&o.lookaheadTime, "lookahead-time", policy.DefaultLookaheadTime, "replicatord scheduler.lookahead_time in emulated time (divided by the time scale)")
	fs.DurationVar(&o.detectionLag, "detection-lag", policy.DefaultDetectionLag, "replicatord scheduler.detection_lag in emulated time (divided by the time scale)")
	fs.DurationVar(&o.pollMax, "poll-max", policy.DefaultPollMax, "replicatord scheduler.poll_max in emulated time (divided by the time scale)")
	fs.DurationVar(&o.tfTimeout, "terraform-timeout", defaultTerraform.CreateTimeout, "create timeout of the modeled alicloud_image_copy (emulated)")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up on a replicatord run after this wall time")
	fs.StringVar(&o.etcd, "etcd", "", "an etcd server binary (make tools builds tools/bin/etcd): every run also runs replicatord with store.backend etcd on a fresh cluster of --etcd-members real etcd processes on loopback (fsync on)")
	fs.IntVar(&o.etcdMembers, "etcd-members", 3, "members of the etcd cluster, with --etcd")
	fs.IntVar(&o.replicas, "replicas", 1, "replicatord processes on etcd, with --etcd: 2 runs a follower alongside the measured leader")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fleetbench [flags]\n\nfleetbench copies a fleet of images with replicatord against the ECS emulator and\nreports makespan against the lower bound, API calls per copy, throttling, and the\ndaemon's CPU and memory, next to a smart script and Packer run for real over HTTP\nand a modeled Terraform run.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	case o.images < 1 || o.images > 5000:
		return nil, fmt.Errorf("--images %d: want 1 to 5000", o.images)
	case o.regions < 1 || o.regions > len(allDestinations):
		return nil, fmt.Errorf("--regions %d: want 1 to %d", o.regions, len(allDestinations))
	case o.slots < 1 || o.slots > 100:
		return nil, fmt.Errorf("--slots %d: want 1 to 100", o.slots)
	case o.runs < 1 || o.runs > 50:
		return nil, fmt.Errorf("--runs %d: want 1 to 50", o.runs)
	case o.scale < 0 || math.IsNaN(o.scale) || math.IsInf(o.scale, 0):
		return nil, fmt.Errorf("--time-scale %g: want a positive number, or 0 for automatic", o.scale)
	case o.wallTarget <= 0:
		return nil, fmt.Errorf("--wall-target %s: want a positive duration", o.wallTarget)
	case o.rate <= 0 || math.IsNaN(o.rate) || math.IsInf(o.rate, 0):
		return nil, fmt.Errorf("--copy-rate %g: want a positive rate", o.rate)
	case o.startup < 0:
		return nil, fmt.Errorf("--startup %s: want 0 or more", o.startup)
	case o.throttle < 1 || math.IsNaN(o.throttle) || math.IsInf(o.throttle, 0):
		return nil, fmt.Errorf("--throttle %g: want at least 1 call per 60 s", o.throttle)
	case o.lookaheadTime <= 0 || o.detectionLag <= 0:
		return nil, fmt.Errorf("--lookahead-time %s, --detection-lag %s: want positive durations", o.lookaheadTime, o.detectionLag)
	case o.pollMin <= 0 || o.pollMax < o.pollMin:
		return nil, fmt.Errorf("--poll-min %s, --poll-max %s: want 0 < poll-min <= poll-max", o.pollMin, o.pollMax)
	case o.failRate < 0 || o.failRate > 1 || math.IsNaN(o.failRate):
		return nil, fmt.Errorf("--fail-rate %g: want a share from 0 to 1", o.failRate)
	case o.tfTimeout <= 0 || o.timeout <= 0:
		return nil, errors.New("--terraform-timeout and --timeout must be positive")
	}
	if err := checkEtcdFlags(o, fs); err != nil {
		return nil, err
	}
	return o, nil
}

// checkEtcdFlags checks --etcd, --etcd-members and --replicas.
func checkEtcdFlags(o *options, fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case o.etcd == "" && (set["etcd-members"] || set["replicas"]):
		return errors.New("--etcd-members and --replicas are for the run on etcd: add --etcd PATH (an etcd server binary; make tools builds tools/bin/etcd)")
	case set["etcd"] && o.etcd == "":
		return errors.New("--etcd: empty path; want an etcd server binary (make tools builds tools/bin/etcd)")
	case o.etcdMembers < 1 || o.etcdMembers > 9:
		return fmt.Errorf("--etcd-members %d: want 1 to 9", o.etcdMembers)
	case o.replicas < 1 || o.replicas > 2:
		return fmt.Errorf("--replicas %d: want 1 or 2", o.replicas)
	case o.etcd != "":
		return checkEtcdBinary(o.etcd)
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "fleetbench: %v\n", err)
		return 2
	}
	if err := bench(ctx, o, stdout); err != nil {
		fmt.Fprintf(stderr, "fleetbench: %v\n", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o *options, out io.Writer) error {
	f := &fleet{
		Images: newFleet(o.images, o.seed), Regions: allDestinations[:o.regions], Slots: o.slots,
		RateMiBps: o.rate, Startup: max(o.startup, 0), CopyConflict: o.copyConflict, FailRate: o.failRate,
		Urgent: &urgentImage,
	}
	b := f.lowerBound()
	scale := o.scale
	if scale == 0 {
		scale = autoScale(b.Makespan, o.wallTarget)
	}

	fmt.Fprintf(out, "fleet: %d images (%d GiB) from %s to %d regions %v, %d slots per region, %g MiB/s per copy, start-up %s%s%s\n",
		len(f.Images), f.totalGiB()/int64(len(f.Regions)), sourceRegion, len(f.Regions), f.Regions, f.Slots, f.RateMiBps, f.Startup, conflictNote(f), failNote(f))
	fmt.Fprintf(out, "urgent copy: %s (%d GiB, not in the fleet) to %s, sent at %s emulated (half the fleet's own lower bound) as one more ad-hoc copy;\n"+
		"  counted in every figure: copies, calls per copy, makespan (first submit to the last copy seen ended, the urgent one included)\n"+
		"  and the lower bound (its region's total copy time includes it, and it cannot end before it is sent plus its copy time)\n",
		f.Urgent.Name, f.Urgent.SizeGiB, f.Regions[0], fmtHours(b.UrgentAt))
	fb := f.fleetBound()
	fmt.Fprintf(out, "lower bound: %s (%s); without the urgent copy %s (the packer and terraform rows' bound: they make no urgent copy)\n",
		fmtHours(b.Makespan), boundWhy(b), fmtHours(fb.Makespan))
	fmt.Fprintf(out, "time scale: %gx (1 wall second = %g emulated seconds); ECS flow control %g calls/60 s per action -> emulator ThrottleRate %g per 60 wall s, burst %d;\n",
		scale, scale, o.throttle, o.throttle*scale, max(int(o.throttle), 1))
	cfg := daemonConfig{
		Slots: f.Slots, APIRate: 13 * scale, PollMin: scaled(o.pollMin, scale), PollMax: scaled(o.pollMax, scale),
		CopyConflict: f.CopyConflict, Lookahead: o.lookahead,
		LookaheadTime: scaled(o.lookaheadTime, scale), DetectionLag: scaled(o.detectionLag, scale),
	}
	fmt.Fprintf(out, "  daemon: api_rate_per_second %g (13 x scale), poll_min %s, poll_max %s, lookahead_time %s, detection_lag %s (%s, %s, %s and %s / scale)\n\n",
		cfg.APIRate, cfg.PollMin, cfg.PollMax, cfg.LookaheadTime, cfg.DetectionLag, o.pollMin, o.pollMax, o.lookaheadTime, o.detectionLag)

	dir, err := os.MkdirTemp("", "fleetbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(out, "keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := o.daemon
	if bin == "" {
		if bin, err = buildDaemon(ctx, dir); err != nil {
			return err
		}
	}

	var runs, etcdRuns []daemonRun
	var scripts []peerRun
	for i := 0; i < o.runs; i++ {
		rdir := filepath.Join(dir, fmt.Sprintf("run%d", i+1))
		if err := os.MkdirAll(rdir, 0o700); err != nil {
			return err
		}
		r, err := runDaemon(ctx, o, f, b, scale, cfg, bin, rdir, false)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		printDaemonRun(out, o, "run", i+1, r, b)
		runs = append(runs, r)
		if o.etcd != "" {
			edir := filepath.Join(dir, fmt.Sprintf("run%d-etcd", i+1))
			if err := os.MkdirAll(edir, 0o700); err != nil {
				return err
			}
			r, err := runDaemon(ctx, o, f, b, scale, cfg, bin, edir, true)
			if err != nil {
				return fmt.Errorf("run %d on etcd: %w", i+1, err)
			}
			printDaemonRun(out, o, "etcd run", i+1, r, b)
			etcdRuns = append(etcdRuns, r)
		}
		sc, err := runScript(ctx, o, f, scale, defaultScript)
		if err != nil {
			return fmt.Errorf("smart script, run %d: %w", i+1, err)
		}
		fmt.Fprintf(out, "smart script run %d: makespan %s = %.3f x lower bound; %d/%d succeeded, %d failed attempts, %d given up, %d refused; urgent copy %s; %d API calls\n",
			i+1, fmtHours(sc.Makespan), float64(sc.Makespan)/float64(b.Makespan), sc.Succeeded, sc.Copies, sc.FailedAttempts, sc.Failed, sc.refused(),
			urgentNote(sc.UrgentSeen, sc.Urgent, "Creating"), sc.Calls.total())
		if len(sc.GivenUp) > 0 {
			fmt.Fprintf(out, "  given up (two failed attempts): %s\n", strings.Join(sc.GivenUp, ", "))
		}
		if sc.FailedAttempts > 0 {
			printWorkBound(indent{out}, "smart script", sc.Makespan, sc.Regions, f.Slots, b)
		}
		if o.verbose {
			fmt.Fprintf(out, "  smart script calls by action and answer: %v\n", map[string]map[string]int64(sc.Calls))
			printRegions(indent{out}, sc.Regions)
		}
		scripts = append(scripts, sc)
	}

	tp := defaultTerraform
	tp.CreateTimeout = o.tfTimeout
	tf := runTerraform(f, tp, o.throttle)
	// The same with the create timeout raised so that no copy is given up:
	// what terraform's parallelism alone costs.
	tpLong := tp
	tpLong.CreateTimeout = 1000 * time.Hour
	tfLong := runTerraform(f, tpLong, o.throttle)
	pk, err := runPackerReal(ctx, o, f, scale)
	if err != nil {
		return fmt.Errorf("packer: %w", err)
	}
	fmt.Fprintf(out, "packer: %d/%d copies started (%d refused, %d cancelled and %d never sent by halted builds), ECS's queue ends at %s; completion unknown to packer; %d API calls\n",
		pk.Accepted-pk.Cancelled, pk.Copies, pk.refused(), pk.Cancelled, pk.notSent(), fmtHours(pk.Makespan), pk.Calls.total())
	if o.verbose {
		fmt.Fprintf(out, "  packer calls by action and answer: %v\n", map[string]map[string]int64(pk.Calls))
	}
	rows := []row{daemonRow("replicatord", runs, b.Makespan)}
	if o.etcd != "" {
		rows = append(rows, etcdRow(etcdName(o), etcdRuns, runs, b.Makespan))
	}
	rows = append(rows,
		scriptRow(scripts, b.Makespan, true),
		packerRow(pk, fb.Makespan),
		modelRow("terraform pattern", tf, fb.Makespan),
		modelRow("terraform pattern, no create timeout", tfLong, fb.Makespan),
	)
	fmt.Fprintln(out)
	printTable(out, rows)
	printNotes(out, o, f, tf, tp)
	if o.etcd != "" {
		printEtcdNote(out, o, etcdRuns, runs, b.Makespan)
	}
	if o.markdown {
		fmt.Fprintln(out)
		printMarkdown(out, rows)
	}
	return nil
}

// printDaemonRun prints one replicatord run's line (and with -v its detail).
func printDaemonRun(out io.Writer, o *options, label string, n int, r daemonRun, b bound) {
	fmt.Fprintf(out, "%s %d: makespan %s = %.3f x lower bound; %d/%d succeeded, %d failed attempts, %d failed; urgent copy %s; %d API calls; daemon CPU %.1f s, peak RSS %.0f MiB\n",
		label, n, fmtHours(r.Makespan), float64(r.Makespan)/float64(b.Makespan), r.Drive.Succeeded, r.Drive.Submitted, r.FailedAttempts, r.Drive.Failed,
		urgentNote(r.UrgentSeen, r.Urgent, "COPYING"), r.Calls.total(), r.Usage.CPU.Seconds(), float64(r.Usage.MaxRSS)/(1<<20))
	if len(r.Drive.SubmitErrors) > 0 {
		fmt.Fprintf(out, "  %d Copy calls failed, first: %s\n", len(r.Drive.SubmitErrors), r.Drive.SubmitErrors[0])
	}
	if len(r.Drive.FailCodes) > 0 {
		fmt.Fprintf(out, "  failed jobs by code: %v\n", r.Drive.FailCodes)
	}
	if r.FailedAttempts > 0 {
		printWorkBound(indent{out}, "replicatord", r.Makespan, r.Regions, o.slots, b)
	}
	if o.verbose {
		fmt.Fprintf(out, "  calls by action and answer: %v\n", map[string]map[string]int64(r.Calls))
		if len(r.Lags) > 0 {
			fmt.Fprintf(out, "  completion detection lag p50 / p95: %s / %s\n", fmtMinutes(percentile(r.Lags, 50)), fmtMinutes(percentile(r.Lags, 95)))
		}
		printRegions(indent{out}, r.Regions)
	}
}

func urgentNote(seen bool, d time.Duration, state string) string {
	if !seen {
		return "never seen " + state
	}
	return fmt.Sprintf("%s after %s", state, fmtMinutes(d))
}

// printNotes prints what the table's columns mean and issue 12's targets.
func printNotes(out io.Writer, o *options, f *fleet, tf modelRun, tp terraformParams) {
	fmt.Fprintf(out, "\n* not every copy succeeded (or, for packer, started): the makespan is that of the copies that did.\n")
	fmt.Fprintf(out, "replicatord and the smart script: median of %d runs each, range in brackets where runs differ; the per-action split and the throttled split are the median run's.\n", o.runs)
	fmt.Fprintf(out, "terraform pattern: %d of %d copies given up after the %s create timeout (not cancelled; ECS finished them at %s).\n",
		tf.FailedTimeout, tf.Succeeded+tf.Failed, tp.CreateTimeout, fmtHours(tf.ECSDone))
	if f.FailRate > 0 {
		fmt.Fprintf(out, "failed attempts: accepted copies ECS ended CreateFailed; replicatord recopies them (a new attempt), the script re-submits each once; final failures are copies given up. The modeled terraform rows ignore --fail-rate; packer never learns of failures.\n")
	}
	fmt.Fprintf(out, "completion detection lag: from the copy's end in ECS (replayed from the accepted CopyImage calls) to the client seeing it.\n")
	fmt.Fprintf(out, "urgent copy to COPYING: replicatord, the Copy RPC sent to the Watch showing the job COPYING; the script, its CopyImage sent to the first poll that saw the copy Creating.\n")
	fmt.Fprintf(out, "targets (issue 12): makespan <= 1.01 x lower bound, <= 1.2 API calls per copy, 0 throttled, 0 failed, p95 detection lag <= 15 min, urgent copy COPYING <= 30 min (emulated).\n")
}

// runDaemon is one measured replicatord run on a fresh emulator. onEtcd:
// its store is a fresh cluster of --etcd-members etcd processes in
// dir/etcd (stopped and its data removed after the run), the daemon is
// replica r1 and the fleet is submitted only once it leads, so that the
// makespan holds no election; with --replicas 2 a follower, r2, runs
// alongside on the same config file.
func runDaemon(ctx context.Context, o *options, f *fleet, b bound, scale float64, cfg daemonConfig, bin, dir string, onEtcd bool) (daemonRun, error) {
	emu, err := startEmulator(f, scale, o.throttle, int64(o.seed))
	if err != nil {
		return daemonRun{}, err
	}
	defer emu.close()
	member := ""
	if onEtcd {
		cl, err := startEtcdCluster(ctx, o.etcd, o.etcdMembers, filepath.Join(dir, "etcd"))
		if err != nil {
			return daemonRun{}, err
		}
		defer cl.Stop()
		cfg.Etcd, member = cl.Endpoints(), "r1"
	}
	config, err := writeConfig(dir, emu.Endpoint, cfg)
	if err != nil {
		return daemonRun{}, err
	}
	d, err := startDaemon(bin, config, dir, emu.KeyID, emu.Secret, member, "")
	if err != nil {
		return daemonRun{}, err
	}
	defer d.kill() // a no-op once stopped
	var follower *daemonProc
	if onEtcd {
		if follower, err = startReplicas(ctx, o, d, bin, config, dir, emu); err != nil {
			return daemonRun{}, err
		}
		if follower != nil {
			defer follower.kill()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var urgent *urgentPlan
	if f.Urgent != nil {
		urgent = &urgentPlan{Image: *f.Urgent, Region: f.Regions[0], After: scaled(b.UrgentAt, scale)}
	}
	res, err := drive(dctx, d.Socket, f, urgent)
	if err != nil {
		return daemonRun{}, fmt.Errorf("%w (daemon log: %s)", err, filepath.Join(dir, "replicatord.log"))
	}
	if follower != nil {
		// First, so that it does not take over from the leader stopping.
		if _, err := follower.stop(); err != nil {
			return daemonRun{}, fmt.Errorf("follower: %w", err)
		}
	}
	u, err := d.stop()
	if err != nil {
		return daemonRun{}, err
	}
	st := emu.emu.Stats()
	fails := emu.emu.CopyFailures()
	r := daemonRun{
		Makespan:       time.Duration(float64(res.LastTerminal.Sub(res.FirstSubmit)) * scale),
		Drive:          res,
		Calls:          calls(st.Calls),
		Usage:          u,
		FailedAttempts: acceptedFailures(emu.trace, fails),
	}
	if !res.UrgentCopying.IsZero() {
		r.UrgentSeen, r.Urgent = true, time.Duration(float64(res.UrgentCopying.Sub(res.UrgentSent))*scale)
	}
	r.Regions = regionStats(f, emu.trace, b, res.FirstSubmit, scale, fails)
	ends := availableAt(f, emu.trace, res.FirstSubmit, scale, nil, fails)
	for img, at := range res.SucceededAt {
		if end, ok := ends[img]; ok {
			r.Lags = append(r.Lags, max(0, time.Duration(float64(at.Sub(res.FirstSubmit))*scale)-end))
		}
	}
	return r, nil
}

// autoScale picks a round time scale that makes the lower bound last
// about target in wall time.
func autoScale(lb, target time.Duration) float64 {
	s := float64(lb) / float64(target)
	if s <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(s))-1) // two significant digits
	return math.Round(s/p) * p
}

func scaled(d time.Duration, scale float64) time.Duration {
	return max(time.Duration(float64(d)/scale), time.Microsecond)
}

func failNote(f *fleet) string {
	if f.FailRate > 0 {
		return fmt.Sprintf(", %g of copies end CreateFailed", f.FailRate)
	}
	return ""
}

func conflictNote(f *fleet) string {
	if f.CopyConflict {
		return ", copy-conflict rule on"
	}
	return ""
}

func boundWhy(b bound) string {
	if b.Region == "" {
		return "the longest chain of one image's copies, copy-conflict rule"
	}
	return "region " + b.Region + ": max(longest copy, total copy time / slots)"
}

// indent prefixes every line written with two spaces.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	var b []byte
	start := true
	for _, c := range p {
		if start {
			b = append(b, ' ', ' ')
		}
		b = append(b, c)
		start = c == '\n'
	}
	_, err := i.w.Write(b)
	return len(p), err
}
