package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/job"
)

// The chaos test runs the real binaries against an emulator that
// misbehaves on purpose, SIGKILLs the daemon at random moments while jobs
// are submitted and cancelled and watchers record every Watch message, and
// then checks the promises against ECS (the emulator's admin view, which
// has no faults) and against the recorded histories. The seed of every
// random choice is logged; -chaos.seed replays a run's choices (process
// timing still varies).
var (
	chaosSeed   = flag.Int64("chaos.seed", 0, "seed of the random choices of TestChaos and TestHAChaos (0 = from the clock)")
	chaosReport = flag.String("chaos.report", "", "write TestChaos's report as a markdown table to this file")
	chaosSoak   = flag.Bool("chaos.soak", false, "TestChaos runs as a long soak: more jobs, more kills, a longer run")
)

// chaosPlan sizes a run.
type chaosPlan struct {
	policyImages int           // fixture images the policy copies to every region
	adhocImages  int           // fixture images copied ad hoc, each to every region
	rounds       int           // kill/restart rounds
	minUp, maxUp time.Duration // the daemon lives this long between kills
	cancelShare  float64       // share of ad-hoc jobs cancelled
	quiesce      time.Duration // bound on reaching quiescence after the last kill
}

var chaosRegions = []string{
	"cn-qingdao", "cn-beijing", "cn-zhangjiakou", "cn-huhehaote", "cn-shanghai", "cn-shenzhen",
	"cn-chengdu", "cn-hongkong", "ap-southeast-1", "ap-northeast-1", "us-west-1", "eu-central-1",
}

const chaosPolicy = "chaos"

// Faults of the emulator: 500s and 503s on every action, latency, a few
// hung calls (the adapter's read timeout cuts them), dropped connections,
// throttling below the daemon's own rate, copies ending CreateFailed and
// cancels answering CancelNotSupported.
var chaosEmuFlags = []string{
	"--time-scale", "600",
	"--fault", "*:internalErrorRate=0.03,unavailableRate=0.03,latency=2ms",
	"--fault", "DescribeImages:internalErrorRate=0.03,unavailableRate=0.03,hangRate=0.002,dropRate=0.01,latency=3ms",
	"--fault", "CopyImage:internalErrorRate=0.05,unavailableRate=0.05,hangRate=0.003,dropRate=0.01,latency=5ms",
	"--create-failed-rate", "0.08",
	"--cancel-not-supported-rate", "0.3",
	"--throttle-rate", "240",
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	plan := chaosPlan{policyImages: 14, adhocImages: 12, rounds: 8, minUp: 1500 * time.Millisecond, maxUp: 4 * time.Second, cancelShare: 0.4, quiesce: 4 * time.Minute}
	if *chaosSoak {
		plan = chaosPlan{policyImages: 60, adhocImages: 60, rounds: 100, minUp: 1 * time.Second, maxUp: 8 * time.Second, cancelShare: 0.3, quiesce: 10 * time.Minute}
	}
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("chaos seed %d (replay the choices with -chaos.seed=%d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	began := time.Now()

	e := newEnv(t, append(chaosEmuFlags, "--seed", fmt.Sprint(seed%1000000))...)
	e.writeConfig(chaosConfig())
	policyImgs := e.addChaosImages("chaospolicy", plan.policyImages, map[string]string{"role": "chaos"}, 1)
	// Ad-hoc images are larger, so that cancels and kills find their
	// copies in flight.
	adhocImgs := e.addChaosImages("chaosadhoc0", plan.adhocImages, map[string]string{"role": "adhoc"}, 24)
	// Hand-made images with replicatord's tags, which the daemon must never
	// touch: before the storm, partial lineage and another owner's copy
	// (a first start on a new state file adopts only this owner's).
	planted := &plantedSet{ids: map[string]string{}}
	planted.add(e, "cn-beijing", "partial", map[string]string{job.TagPolicy: chaosPolicy, job.TagSourceImage: policyImgs[0], job.TagSourceRegion: source})
	planted.add(e, "cn-shanghai", "teamb", map[string]string{job.TagPolicy: chaosPolicy, job.TagSourceImage: policyImgs[1], job.TagSourceRegion: source,
		job.TagJobID: job.NewID(time.Now()), job.TagAttempt: "1", job.TagOwner: "team-b"})

	e.startDaemon()
	conn, err := grpc.NewClient("unix://"+e.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewReplicatorServiceClient(conn)

	// Watchers: two resume with from_revision, one re-snapshots each time,
	// one watches only the policy's jobs.
	ctx, stopWatchers := context.WithCancel(context.Background())
	watchers := []*watcher{
		{name: "resume-all", resume: true},
		{name: "resume-all-2", resume: true},
		{name: "snapshot-all"},
		{name: "resume-policy", resume: true, policy: chaosPolicy},
	}
	var wg sync.WaitGroup
	for _, w := range watchers {
		w.view = map[string]*pb.Job{}
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, client) }()
	}
	defer func() { stopWatchers(); wg.Wait() }()
	// "No untracked copy", every few seconds during the storm.
	untracked := &untrackedChecker{e: e, client: client, planted: planted}
	uctx, stopUntracked := context.WithCancel(context.Background())
	untrackedDone := make(chan struct{})
	go func() { defer close(untrackedDone); untracked.run(uctx) }()
	defer func() { stopUntracked(); <-untrackedDone }()

	// Ad-hoc copies: each image to a shuffled half of the regions in two
	// calls, spread over the rounds.
	type adhocCall struct {
		image string
		dests []string
	}
	var calls []adhocCall
	for _, im := range adhocImgs {
		rs := append([]string(nil), chaosRegions...)
		rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
		calls = append(calls, adhocCall{im, rs[:len(rs)/2]}, adhocCall{im, rs[len(rs)/2:]})
	}
	rng.Shuffle(len(calls), func(i, j int) { calls[i], calls[j] = calls[j], calls[i] })

	var (
		adhocJobs   []string
		cancels     int
		cancelFails int
		copyFails   int
		kills       int
	)
	for round := 0; round < plan.rounds; round++ {
		up := plan.minUp + time.Duration(rng.Int63n(int64(plan.maxUp-plan.minUp)))
		deadline := time.Now().Add(up)
		// Submit this round's share of the ad-hoc calls.
		share := (len(calls) + plan.rounds - 1) / plan.rounds
		var fresh []string
		for i := 0; i < share && len(calls) > 0; i++ {
			c := calls[0]
			calls = calls[1:]
			ids, err := copyDetached(client, c.image, c.dests)
			fresh = append(fresh, ids...)
			if err != nil {
				copyFails++
				t.Logf("round %d: copy %s: %v (%d jobs seen)", round, c.image, err, len(ids))
			}
		}
		adhocJobs = append(adhocJobs, fresh...)
		// Half way to the kill, cancel some of this round's jobs (many
		// in flight by then) and a few older ones, at random.
		<-time.After(time.Until(deadline.Add(-up / 2))) // the chaos schedule itself
		for _, id := range adhocJobs {
			p := plan.cancelShare / float64(plan.rounds)
			if slices.Contains(fresh, id) {
				p = plan.cancelShare
			}
			if rng.Float64() >= p {
				continue
			}
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := client.Cancel(cctx, &pb.CancelRequest{JobIds: []string{id}})
			cancel()
			cancels++
			if err != nil {
				cancelFails++
			}
		}
		// Live until the kill moment.
		<-time.After(time.Until(deadline)) // the chaos schedule itself, not synchronisation
		e.daemon.kill9()
		kills++
		e.startDaemon()
		// During the storm: a hand-made image carrying a real copy's
		// complete tag set, and one with this owner's tags and a job id no
		// store knows.
		planted.forge(e, round)
		planted.add(e, chaosRegions[round%len(chaosRegions)], fmt.Sprintf("unknown%02d", round), map[string]string{
			job.TagPolicy: chaosPolicy, job.TagSourceImage: policyImgs[round%len(policyImgs)], job.TagSourceRegion: source,
			job.TagJobID: job.NewID(time.Now()), job.TagAttempt: "1", job.TagOwner: job.DefaultOwner})
	}
	// Whatever ad-hoc calls are left go to the last daemon.
	for _, c := range calls {
		ids, err := copyDetached(client, c.image, c.dests)
		adhocJobs = append(adhocJobs, ids...)
		if err != nil {
			copyFails++
		}
	}
	t.Logf("chaos phase done after %s: %d kills, %d ad-hoc jobs seen, %d cancels (%d refused or failed), %d copy calls failed",
		time.Since(began).Round(time.Millisecond), kills, len(adhocJobs), cancels, cancelFails, copyFails)

	// Quiescence. The storm passes first (faults off; throttling,
	// CreateFailed and CancelNotSupported stay), as it does in a real
	// outage, so that the bound on reaching it holds; then every job must
	// become terminal and the policy converge.
	e.clearFaults()
	e.waitQuiet(client, plan.quiesce)
	jobs := e.waitPolicyConverged(client, plan.quiesce)

	var violations []string
	violate := func(format string, args ...any) {
		violations = append(violations, fmt.Sprintf(format, args...))
	}
	stopUntracked()
	<-untrackedDone
	untracked.confirm(violate)
	images := e.chaosImages()
	all, err := fetchImages(e.endpoint) // the partial one has no job-id tag
	if err != nil {
		t.Fatal(err)
	}
	planted.check(all, violate)
	checkECS(jobs, planted.drop(images), policyImgs, violate)
	for _, w := range watchers {
		w.check(jobs, violate)
	}

	// The final stop, then bbolt's consistency check of the state file.
	if code := e.daemon.stop(); code != 0 {
		violate("daemon exited %d on SIGTERM", code)
	}
	check := exec.Command(filepath.Join(binDir, "replicatord"), "--check-state", filepath.Join(e.dir, "data", "state.db"))
	if out, err := check.CombinedOutput(); err != nil {
		violate("--check-state: %v: %s", err, out)
	}

	st := e.emuStats()
	states := map[string]int{}
	for _, j := range jobs {
		states[strings.TrimPrefix(j.GetState().String(), "JOB_STATE_")]++
	}
	var msgs, streams, outOfRange int
	for _, w := range watchers {
		msgs += w.messages
		streams += w.streams
		outOfRange += w.outOfRange
	}
	rows := [][2]string{
		{"seed", fmt.Sprint(seed)},
		{"jobs", fmt.Sprintf("%d (%s)", len(jobs), fmtCounts(states))},
		{"policy images × regions", fmt.Sprintf("%d × %d", len(policyImgs), len(chaosRegions))},
		{"ad-hoc jobs", fmt.Sprint(len(adhocJobs))},
		{"kills (SIGKILL)", fmt.Sprint(kills)},
		{"cancels", fmt.Sprintf("%d (%d refused: already terminal or daemon down)", cancels, cancelFails)},
		{"copy calls failed", fmt.Sprint(copyFails)},
		{"faults configured", strings.Join(chaosEmuFlags, " ")},
		{"faults injected", fmtNested(st.Faults)},
		{"throttled calls", fmt.Sprint(st.Throttled)},
		{"ECS calls", fmtCalls(st.Calls)},
		{"watch streams / messages / OUT_OF_RANGE", fmt.Sprintf("%d / %d / %d", streams, msgs, outOfRange)},
		{"duration", time.Since(began).Round(time.Second).String()},
		{"hand-made images planted / untracked-copy checks", fmt.Sprintf("%d / %d", len(planted.ids), untracked.checks)},
		{"violations", fmt.Sprint(len(violations))},
	}
	var report strings.Builder
	report.WriteString("| measure | value |\n|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&report, "| %s | %s |\n", r[0], strings.ReplaceAll(r[1], "|", "\\|"))
	}
	t.Logf("chaos report:\n%s", report.String())
	if *chaosReport != "" {
		if err := os.WriteFile(*chaosReport, []byte(report.String()), 0o644); err != nil {
			t.Errorf("write report: %v", err)
		}
	}
	for i, v := range violations {
		if i == 50 {
			t.Errorf("... and %d more violations", len(violations)-50)
			break
		}
		t.Errorf("violation: %s", v)
	}
}

func chaosConfig() string {
	return fmt.Sprintf(`  api_rate_per_second: 40
  max_attempts: 6
policies:
  - name: %s
    source:
      region: %s
      images: {tags: {role: chaos}}
    destinations: [%s]
    interval: 1m
`, chaosPolicy, source, strings.Join(chaosRegions, ", "))
}

// addChaosImages adds n small Available images to the source region through
// the admin API and returns their ids.
func (e *env) addChaosImages(prefix string, n int, tags map[string]string, sizeGiB int) []string {
	e.t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m-%s%0*d", prefix, 20-len(prefix), i)
		body, _ := json.Marshal(map[string]any{
			"region": source, "id": id, "name": fmt.Sprintf("%s-%03d", prefix, i), "sizeGiB": sizeGiB,
			"status": "Available", "creationTime": "2026-11-01T00:00:00Z", "tags": tags,
		})
		resp, err := http.Post(e.endpoint+"/_ecsemu/images", "application/json", bytes.NewReader(body))
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			e.t.Fatalf("add image %s: %d %s", id, resp.StatusCode, b)
		}
		ids = append(ids, id)
	}
	return ids
}

// copyDetached asks for a detached copy and returns the ids of the jobs the
// stream showed before it ended (the daemon may die under it).
func copyDetached(client pb.ReplicatorServiceClient, image string, dests []string) (ids []string, err error) {
	// The daemon looks the source image up in ECS before it makes any job;
	// a transient failure of that lookup is retried here, as a client
	// would. Any other failure is not: jobs may exist.
	for try := 0; try < 5; try++ {
		ids, err = copyDetachedOnce(client, image, dests)
		// A replica just started may not know the regions yet: that
		// refusal, too, comes before any job.
		msg := status.Convert(err).Message()
		if err == nil || len(ids) > 0 || !strings.Contains(msg, "look up source image") && !strings.Contains(msg, "cannot check region") {
			return ids, err
		}
		time.Sleep(time.Duration(250<<try) * time.Millisecond) // a client's retry backoff
	}
	return ids, err
}

func copyDetachedOnce(client pb.ReplicatorServiceClient, image string, dests []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := client.Copy(ctx, &pb.CopyRequest{SourceRegion: source, SourceImageId: image, DestinationRegions: dests, Detach: true}, grpc.WaitForReady(true))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for len(seen) < len(dests) {
		m, err := stream.Recv()
		if err != nil {
			return ids, err
		}
		if id := m.GetJob().GetId(); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// allJobs lists every job through ListJobs, page by page.
func allJobs(ctx context.Context, client pb.ReplicatorServiceClient) ([]*pb.Job, error) {
	var out []*pb.Job
	token := ""
	for {
		resp, err := client.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 1000, PageToken: token}, grpc.WaitForReady(true))
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetJobs()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// waitQuiet waits until every job is terminal and returns them.
func (e *env) waitQuiet(client pb.ReplicatorServiceClient, timeout time.Duration) []*pb.Job {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		jobs, err := allJobs(ctx, client)
		cancel()
		busy := map[string]int{}
		if err == nil {
			for _, j := range jobs {
				if !job.State(j.GetState()).Terminal() {
					busy[j.GetState().String()]++
				}
			}
			if len(busy) == 0 {
				return jobs
			}
		}
		if time.Now().After(deadline) {
			var stuck []string
			for _, j := range jobs {
				if !job.State(j.GetState()).Terminal() {
					stuck = append(stuck, fmt.Sprintf("%s %s attempts %d copy %q updated %s next attempt %s error %v",
						j.GetId(), j.GetState(), j.GetAttempts(), j.GetDestinationImageId(),
						j.GetUpdateTime().AsTime().Format(time.RFC3339Nano), j.GetNextAttemptTime().AsTime().Format(time.RFC3339Nano), j.GetError()))
				}
			}
			e.t.Fatalf("no quiescence within %s: jobs not terminal by state %v (list error %v):\n%s", timeout, busy, err, strings.Join(stuck, "\n"))
		}
		time.Sleep(250 * time.Millisecond) // poll the daemon, as an operator would
	}
}

// waitPolicyConverged runs the policy until its plan holds nothing to copy
// and nothing in progress, and every job is terminal.
func (e *env) waitPolicyConverged(client pb.ReplicatorServiceClient, timeout time.Duration) []*pb.Job {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		plan, err := client.PlanPolicies(ctx, &pb.PlanPoliciesRequest{Policies: []string{chaosPolicy}})
		cancel()
		pending := map[string]int{}
		if err == nil {
			for _, it := range plan.GetItems() {
				if a := it.GetAction(); a == pb.PlanAction_PLAN_ACTION_COPY || a == pb.PlanAction_PLAN_ACTION_IN_PROGRESS || a == pb.PlanAction_PLAN_ACTION_ADOPT {
					pending[a.String()]++
				}
			}
			if len(pending) == 0 {
				return e.waitQuiet(client, time.Until(deadline))
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("policy %s did not converge within %s: plan %v (error %v)", chaosPolicy, timeout, pending, err)
		}
		if _, err := client.ReconcilePolicies(context.Background(), &pb.ReconcilePoliciesRequest{Policies: []string{chaosPolicy}}); err != nil {
			e.t.Fatalf("ReconcilePolicies: %v", err)
		}
		e.waitQuiet(client, time.Until(deadline))
		// ReconcilePolicies only starts a run; pace the loop so that the
		// plan is not asked again before the run submitted its jobs, and so
		// that this loop's own DescribeImages calls (a plan and a run list
		// 13 regions each) stay well inside the emulator's flow control of
		// 240 calls a minute, leaving room for the daemon.
		time.Sleep(8 * time.Second)
	}
}

func (e *env) clearFaults() {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, e.endpoint+"/_ecsemu/faults", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("DELETE /_ecsemu/faults: %s", resp.Status)
	}
}

// ecsImage is an image as the emulator's admin API shows it.
type ecsImage struct {
	Region  string `json:"region"`
	ImageID string `json:"ImageId"`
	Status  string `json:"Status"`
	Tags    struct {
		Tag []struct{ TagKey, TagValue string }
	} `json:"Tags"`
}

func (im ecsImage) tag(k string) string {
	for _, t := range im.Tags.Tag {
		if t.TagKey == k {
			return t.TagValue
		}
	}
	return ""
}

// chaosImages returns every lineage-tagged image in every region, read
// through the admin API (no faults there).
func (e *env) chaosImages() []ecsImage {
	e.t.Helper()
	resp, err := http.Get(e.endpoint + "/_ecsemu/images")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []ecsImage
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		e.t.Fatal(err)
	}
	var out []ecsImage
	for _, im := range all {
		if im.tag(job.TagJobID) != "" {
			out = append(out, im)
		}
	}
	return out
}

type emuStats struct {
	Calls     map[string]map[string]int64 `json:"calls"`
	Throttled int64                       `json:"throttled"`
	Faults    map[string]map[string]int64 `json:"faults"`
}

func (e *env) emuStats() emuStats {
	e.t.Helper()
	resp, err := http.Get(e.endpoint + "/_ecsemu/stats")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st emuStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// checkECS checks the jobs against ECS: every SUCCEEDED job's copy exists,
// Available, tagged with the job, and is its job's only copy; no copy
// exists that no job owns; a FAILED, CANCELLED or PRUNED job has no copy
// left at all; the policy holds exactly one Available copy of each source
// in each region.
func checkECS(jobs []*pb.Job, images []ecsImage, policyImgs []string, violate func(string, ...any)) {
	byID := map[string]*pb.Job{}
	for _, j := range jobs {
		byID[j.GetId()] = j
		if !job.State(j.GetState()).Terminal() {
			violate("job %s is %s, not terminal", j.GetId(), j.GetState())
		}
	}
	owned := map[string][]ecsImage{} // job id -> its copies
	for _, im := range images {
		id := im.tag(job.TagJobID)
		if byID[id] == nil {
			violate("%s %s (%s) carries job-id %s, which no job has", im.Region, im.ImageID, im.Status, id)
			continue
		}
		owned[id] = append(owned[id], im)
	}
	policyCopies := map[string]int{} // source>region -> Available copies
	for _, j := range jobs {
		copies := owned[j.GetId()]
		var avail []ecsImage
		for _, im := range copies {
			if im.Status == "Available" {
				avail = append(avail, im)
			}
			if im.Region != j.GetDestinationRegion() {
				violate("job %s (to %s) has a copy %s in %s", j.GetId(), j.GetDestinationRegion(), im.ImageID, im.Region)
			}
		}
		switch j.GetState() {
		case pb.JobState_JOB_STATE_SUCCEEDED:
			if len(copies) != 1 || len(avail) != 1 || avail[0].ImageID != j.GetDestinationImageId() {
				violate("SUCCEEDED job %s (%s>%s) wants exactly its copy %s Available; ECS holds %s",
					j.GetId(), j.GetSourceImageId(), j.GetDestinationRegion(), j.GetDestinationImageId(), fmtImages(copies))
			}
			if j.GetPolicy() == chaosPolicy {
				policyCopies[j.GetSourceImageId()+">"+j.GetDestinationRegion()]++
			}
		case pb.JobState_JOB_STATE_CANCELLED, pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_PRUNED:
			if len(copies) != 0 {
				violate("%s job %s still has copies: %s", j.GetState(), j.GetId(), fmtImages(copies))
			}
		default:
			if len(avail) != 0 {
				violate("%s job %s has an Available copy: %s", j.GetState(), j.GetId(), fmtImages(avail))
			}
		}
	}
	for _, src := range policyImgs {
		for _, r := range chaosRegions {
			if n := policyCopies[src+">"+r]; n != 1 {
				violate("policy %s: %s in %s has %d SUCCEEDED copies, want exactly 1", chaosPolicy, src, r, n)
			}
		}
	}
}

// plantedSet holds the hand-made images planted in the emulator (id ->
// region), which must all survive untouched.
type plantedSet struct {
	mu  sync.Mutex
	ids map[string]string
}

func (p *plantedSet) add(e *env, region, name string, tags map[string]string) {
	e.t.Helper()
	id := fmt.Sprintf("m-hand%016d", len(p.ids))
	e.plant(region, id, "handmade-"+name, "Available", tags, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	p.mu.Lock()
	p.ids[id] = region
	p.mu.Unlock()
}

func (p *plantedSet) has(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.ids[id]
	return ok
}

// forge copies the complete tag set of one of the daemon's Available
// copies onto a hand-made image in the same region.
func (p *plantedSet) forge(e *env, round int) {
	e.t.Helper()
	var real []ecsImage
	for _, im := range e.chaosImages() {
		if im.Status == "Available" && im.tag(job.TagOwner) == job.DefaultOwner && !p.has(im.ImageID) {
			real = append(real, im)
		}
	}
	if len(real) == 0 {
		return
	}
	im := real[round%len(real)]
	tags := map[string]string{}
	for _, t := range im.Tags.Tag {
		tags[t.TagKey] = t.TagValue
	}
	p.add(e, im.Region, fmt.Sprintf("forged%02d", round), tags)
}

// check reports every planted image that is gone or no longer Available.
func (p *plantedSet) check(images []ecsImage, violate func(string, ...any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]ecsImage{}
	for _, im := range images {
		seen[im.ImageID] = im
	}
	for id, region := range p.ids {
		if im, ok := seen[id]; !ok || im.Region != region || im.Status != "Available" {
			violate("hand-made image %s in %s was touched: %+v", id, region, im)
		}
	}
}

// drop returns images without the planted ones.
func (p *plantedSet) drop(images []ecsImage) []ecsImage {
	var out []ecsImage
	for _, im := range images {
		if !p.has(im.ImageID) {
			out = append(out, im)
		}
	}
	return out
}

// untrackedChecker checks, every few seconds while the storm runs, that
// every copy of this owner in ECS (the emulator's admin view) is tracked by
// a non-terminal job or is the copy of a SUCCEEDED one. A finding counts
// only if it still holds at the next check (the grace for a copy ending
// while it is looked at: deleted, then its job marked).
type untrackedChecker struct {
	e       *env
	client  pb.ReplicatorServiceClient
	pick    func() pb.ReplicatorServiceClient // if set, the client of each check (HA: a replica that is up)
	planted *plantedSet

	mu        sync.Mutex
	checks    int
	suspects  map[string]string // image id -> why, from the last check
	confirmed []string
}

func (u *untrackedChecker) run(ctx context.Context) {
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			u.once(ctx)
		}
	}
}

func (u *untrackedChecker) once(ctx context.Context) {
	images, err := fetchImages(u.e.endpoint)
	if err != nil {
		return
	}
	found := map[string]string{}
	client := u.client
	if u.pick != nil {
		client = u.pick()
	}
	for _, im := range images {
		if im.tag(job.TagOwner) != job.DefaultOwner || u.planted.has(im.ImageID) || im.tag(job.TagJobID) == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := client.GetJob(cctx, &pb.GetJobRequest{JobId: im.tag(job.TagJobID)})
		cancel()
		if err != nil {
			if status.Code(err) == codes.NotFound {
				found[im.ImageID] = fmt.Sprintf("%s %s (%s) carries job-id %s, which the daemon does not know", im.Region, im.ImageID, im.Status, im.tag(job.TagJobID))
			}
			continue // the daemon is down (a kill): look next time
		}
		j := resp.GetJob()
		st := job.State(j.GetState())
		if !st.Terminal() || (st == job.StateSucceeded && j.GetDestinationImageId() == im.ImageID) {
			continue
		}
		found[im.ImageID] = fmt.Sprintf("%s %s (%s) is untracked: its job %s is %s with copy %q", im.Region, im.ImageID, im.Status, j.GetId(), j.GetState(), j.GetDestinationImageId())
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.checks++
	for id, why := range found {
		if _, again := u.suspects[id]; again {
			u.confirmed = append(u.confirmed, why)
		}
	}
	u.suspects = found
}

func (u *untrackedChecker) confirm(violate func(string, ...any)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.checks == 0 {
		violate("the untracked-copy check never ran during the storm")
	}
	seen := map[string]bool{}
	for _, why := range u.confirmed {
		if !seen[why] {
			seen[why] = true
			violate("during the storm: %s", why)
		}
	}
}

// fetchImages is chaosImages without the test's Fatal, for goroutines.
func fetchImages(endpoint string) ([]ecsImage, error) {
	resp, err := http.Get(endpoint + "/_ecsemu/images")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var all []ecsImage
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return nil, err
	}
	return all, nil
}

// watcher follows Watch across daemon restarts and checks each message as
// it comes.
type watcher struct {
	name   string
	resume bool   // resume with from_revision after a break; else a new snapshot
	policy string // filter
	// pick, if set, chooses the replica of each new stream (the HA test's
	// watchers fail over from replica to replica); else run's client.
	pick func() (string, pb.ReplicatorServiceClient)

	mu         sync.Mutex
	last       int64 // highest revision seen
	view       map[string]*pb.Job
	problems   []string
	messages   int
	streams    int
	outOfRange int
	via        string // the replica of the current stream (with pick)
	failovers  int    // streams resumed from a revision on another replica than the one before
}

func (w *watcher) problem(format string, args ...any) {
	w.problems = append(w.problems, w.name+": "+fmt.Sprintf(format, args...))
}

func (w *watcher) run(ctx context.Context, client pb.ReplicatorServiceClient) {
	for ctx.Err() == nil {
		from := int64(0)
		w.mu.Lock()
		if w.resume {
			from = w.last
		}
		w.mu.Unlock()
		c := client
		if w.pick != nil {
			var name string
			name, c = w.pick()
			w.mu.Lock()
			if w.via != "" && name != w.via && from > 0 {
				w.failovers++
			}
			w.via = name
			w.mu.Unlock()
		}
		err := w.stream(ctx, c, from)
		if status.Code(err) == codes.OutOfRange {
			// Compacted: start over with a snapshot.
			w.mu.Lock()
			w.outOfRange++
			w.last = 0
			w.mu.Unlock()
		}
		if ctx.Err() == nil {
			// The daemon is down: WaitForReady on the next call waits for
			// it; the pause only keeps a refused stream from spinning.
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (w *watcher) stream(ctx context.Context, client pb.ReplicatorServiceClient, from int64) error {
	stream, err := client.Watch(ctx, &pb.WatchRequest{FromRevision: from, Policy: w.policy}, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.streams++
	w.mu.Unlock()
	inSnapshot := from == 0
	var snapRev, prev int64 = 0, from
	atPrev := map[string]bool{} // the jobs sent at revision prev
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.messages++
		switch {
		case m.GetSnapshotComplete():
			if !inSnapshot {
				w.problem("snapshot_complete at revision %d on a stream resumed from %d", m.GetRevision(), from)
			}
			inSnapshot = false
			snapRev = m.GetRevision()
			prev = snapRev
		case m.GetSnapshot():
			if !inSnapshot {
				w.problem("snapshot message at revision %d after the snapshot ended", m.GetRevision())
			}
			w.apply(m.GetJob(), m.GetRevision())
		default:
			if inSnapshot {
				w.problem("change at revision %d before snapshot_complete", m.GetRevision())
			}
			// Revisions never go back. Equal ones are allowed: one
			// transaction may change several jobs (etcd), and a resume
			// sends the changes at from_revision again; but each job once
			// per revision.
			switch r := m.GetRevision(); {
			case r < prev || r == prev && atPrev[m.GetJob().GetId()]:
				w.problem("revision %d after %d on one stream (from_revision %d)", r, prev, from)
			case r > prev:
				clear(atPrev)
			}
			atPrev[m.GetJob().GetId()] = true
			prev = m.GetRevision()
			w.apply(m.GetJob(), m.GetRevision())
		}
		if prev > w.last {
			w.last = prev
		}
		w.mu.Unlock()
	}
}

// apply checks a job's new view against the one before: its revision never
// goes back, and its state goes back only for a new attempt — a change of
// attempts, or a requeue to QUEUED that records why.
func (w *watcher) apply(j *pb.Job, rev int64) {
	if j == nil {
		w.problem("message at revision %d without a job", rev)
		return
	}
	if w.policy != "" && j.GetPolicy() != w.policy {
		w.problem("job %s of policy %q on a watch of policy %q", j.GetId(), j.GetPolicy(), w.policy)
	}
	old := w.view[j.GetId()]
	w.view[j.GetId()] = j
	if old == nil {
		return
	}
	if j.GetRevision() < old.GetRevision() {
		w.problem("job %s went back from revision %d to %d", j.GetId(), old.GetRevision(), j.GetRevision())
	}
	from, to := job.State(old.GetState()), job.State(j.GetState())
	if from == job.StateSucceeded && to != job.StateSucceeded {
		w.problem("job %s left SUCCEEDED for %s", j.GetId(), to)
	}
	if to.Rank() < from.Rank() && j.GetAttempts() == old.GetAttempts() && !(to == job.StateQueued && j.GetError() != nil) {
		w.problem("job %s went back from %s to %s within attempt %d (revisions %d -> %d)", j.GetId(), from, to, j.GetAttempts(), old.GetRevision(), j.GetRevision())
	}
}

// check compares the watcher's final view of every job it should see with
// the daemon's: a resumed watch misses nothing still retained. The
// watcher may still be catching up, so it gets a few seconds.
func (w *watcher) check(jobs []*pb.Job, violate func(string, ...any)) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var diffs []string
		w.mu.Lock()
		for _, j := range jobs {
			if w.policy != "" && j.GetPolicy() != w.policy {
				continue
			}
			v := w.view[j.GetId()]
			switch {
			case v == nil:
				diffs = append(diffs, fmt.Sprintf("job %s (%s, revision %d) never seen", j.GetId(), j.GetState(), j.GetRevision()))
			case v.GetRevision() != j.GetRevision() || v.GetState() != j.GetState() || v.GetDestinationImageId() != j.GetDestinationImageId():
				diffs = append(diffs, fmt.Sprintf("job %s: watched %s rev %d copy %q; GetJob %s rev %d copy %q", j.GetId(),
					v.GetState(), v.GetRevision(), v.GetDestinationImageId(), j.GetState(), j.GetRevision(), j.GetDestinationImageId()))
			}
		}
		problems := append([]string(nil), w.problems...)
		w.mu.Unlock()
		if len(diffs) == 0 || time.Now().After(deadline) {
			for _, p := range problems {
				violate("%s", p)
			}
			for _, d := range diffs {
				violate("%s: final view differs: %s", w.name, d)
			}
			return
		}
		time.Sleep(100 * time.Millisecond) // the watcher's stream catches up by itself
	}
}

func fmtImages(ims []ecsImage) string {
	if len(ims) == 0 {
		return "none"
	}
	var s []string
	for _, im := range ims {
		s = append(s, im.ImageID+" "+im.Status)
	}
	return strings.Join(s, ", ")
}

func fmtCounts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(s, ", ")
}

func fmtNested(m map[string]map[string]int64) string {
	agg := map[string]int{}
	for _, kinds := range m {
		for k, n := range kinds {
			agg[k] += int(n)
		}
	}
	return fmtCounts(agg)
}

func fmtCalls(m map[string]map[string]int64) string {
	agg := map[string]int{}
	for action, codes := range m {
		for _, n := range codes {
			agg[action] += int(n)
		}
	}
	return fmtCounts(agg)
}

// A cancel that reaches a job while it is SUBMITTING (CopyImage failing and
// being retried) must end the job CANCELLED, with no copy in ECS. TestChaos
// found such jobs stuck in SUBMITTING for good.
func TestCancelWhileSubmitting(t *testing.T) {
	e := newEnv(t, "--fault", "CopyImage:internalErrorRate=1")
	e.startDaemon()
	// The copy stream would follow the job until it is accepted: read the
	// job's id from its first line and let it go.
	cp := e.ctlStart("copy", imgAlinux, "--from", source, "--to", "cn-qingdao", "--detach", "-o", "json")
	line := cp.waitLine(`"id"`, 30*time.Second)
	cp.cmd.Process.Kill()
	var id string
	for k := range jobsIn(t, line) {
		id = k
	}
	if id == "" {
		t.Fatalf("copy showed no job: %s", line)
	}
	// Every CopyImage answers 500: the job stays SUBMITTING, retrying.
	e.waitState(id, "JOB_STATE_SUBMITTING", 30*time.Second)
	if out, code := e.ctl("cancel", id, "-o", "json"); code != 0 {
		t.Fatalf("cancel: exit %d: %s", code, out)
	}
	var problems []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := e.ctl("get", id, "-o", "json")
		j := jobsIn(t, out)[id]
		if j.State == "JOB_STATE_CANCELLED" {
			break
		}
		if time.Now().After(deadline) {
			problems = append(problems, fmt.Sprintf("job %s is %s 20s after the cancel, want CANCELLED", id, j.State))
			break
		}
		time.Sleep(200 * time.Millisecond) // poll the daemon, as an operator would
	}
	if copies := e.copiesIn("cn-qingdao", imgAlinux); len(copies) != 0 {
		problems = append(problems, fmt.Sprintf("cn-qingdao holds %d copies of a cancelled job", len(copies)))
	}
	// Once a known bug: SUBMITTING -> CANCELLED was not an allowed
	// transition, and the job stayed SUBMITTING for good.
	reportCase(t, "", problems)
}

// The chaos checkers themselves catch what they are meant to catch (fed
// made-up histories and images; no processes).
func TestChaosCheckers(t *testing.T) {
	mk := func(id string, st pb.JobState, attempts int32, rev int64, withErr bool) *pb.Job {
		j := &pb.Job{Id: id, State: st, Attempts: attempts, Revision: rev, DestinationRegion: "cn-beijing", SourceImageId: "m-src"}
		if withErr {
			j.Error = &pb.JobError{Code: "InternalError"}
		}
		return j
	}
	// Planted images: one gone, one moved to another status, one intact.
	planted := &plantedSet{ids: map[string]string{"m-gone": "cn-beijing", "m-unavail": "cn-beijing", "m-ok": "cn-beijing"}}
	var plantedViolations []string
	planted.check([]ecsImage{{Region: "cn-beijing", ImageID: "m-ok", Status: "Available"}, {Region: "cn-beijing", ImageID: "m-unavail", Status: "UnAvailable"}},
		func(f string, a ...any) { plantedViolations = append(plantedViolations, fmt.Sprintf(f, a...)) })
	if len(plantedViolations) != 2 {
		t.Errorf("planted check found %v, want the gone and the changed image", plantedViolations)
	}
	if got := planted.drop([]ecsImage{{ImageID: "m-ok"}, {ImageID: "m-daemon"}}); len(got) != 1 || got[0].ImageID != "m-daemon" {
		t.Errorf("drop = %v", got)
	}

	w := &watcher{name: "w", view: map[string]*pb.Job{}}
	w.apply(mk("a", pb.JobState_JOB_STATE_COPYING, 1, 5, false), 5)
	w.apply(mk("a", pb.JobState_JOB_STATE_QUEUED, 1, 6, true), 6) // requeue with a reason: allowed
	w.apply(mk("a", pb.JobState_JOB_STATE_SUBMITTING, 2, 7, false), 7)
	w.apply(mk("a", pb.JobState_JOB_STATE_SUCCEEDED, 2, 8, false), 8)
	if len(w.problems) != 0 {
		t.Fatalf("a legal history was flagged: %v", w.problems)
	}
	w.apply(mk("b", pb.JobState_JOB_STATE_COPYING, 1, 5, false), 5)
	w.apply(mk("b", pb.JobState_JOB_STATE_WAITING, 1, 6, false), 6) // back within attempt 1
	w.apply(mk("b", pb.JobState_JOB_STATE_WAITING, 1, 4, false), 9) // revision back
	w.apply(mk("a", pb.JobState_JOB_STATE_COPYING, 3, 9, false), 9) // left SUCCEEDED
	if len(w.problems) != 3 {
		t.Fatalf("want 3 problems, got %v", w.problems)
	}

	img := func(id, job, status string) ecsImage {
		im := ecsImage{Region: "cn-beijing", ImageID: id, Status: status}
		im.Tags.Tag = append(im.Tags.Tag, struct{ TagKey, TagValue string }{"replicatord:job-id", job})
		return im
	}
	ok := mk("j1", pb.JobState_JOB_STATE_SUCCEEDED, 1, 1, false)
	ok.DestinationImageId = "m-1"
	cancelled := mk("j2", pb.JobState_JOB_STATE_CANCELLED, 1, 1, false)
	var got []string
	violate := func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) }
	checkECS([]*pb.Job{ok, cancelled}, []ecsImage{img("m-1", "j1", "Available")}, nil, violate)
	if len(got) != 0 {
		t.Fatalf("a consistent world was flagged: %v", got)
	}
	checkECS([]*pb.Job{ok, cancelled}, []ecsImage{
		img("m-1", "j1", "Available"), img("m-2", "j1", "Available"), // a duplicate
		img("m-3", "j2", "Creating"),  // a cancelled job's copy
		img("m-4", "j9", "Available"), // nobody's
	}, nil, violate)
	if len(got) != 3 {
		t.Fatalf("want 3 violations, got %d: %v", len(got), got)
	}
}
