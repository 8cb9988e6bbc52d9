package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/job"
)

// haFleet is the HA chaos test's replicas: three replicatord processes on
// one etcd cluster, each restarted on its own id and data directory when
// it dies, as its supervisor would. The test's goroutines (watchers, the
// untracked-copy checker) pick replicas through it; only the test's main
// goroutine starts and kills them.
type haFleet struct {
	e       *env
	ids     []string
	clients []pb.ReplicatorServiceClient

	mu      sync.Mutex
	reps    []*replica
	up      []bool
	leader  int // index of the last leader seen, -1 if none yet
	next    int // round-robin among followers
	exits   []string
	started int
}

func newHAFleet(t *testing.T, e *env, n int) *haFleet {
	f := &haFleet{e: e, leader: -1}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("r%d", i+1)
		f.ids = append(f.ids, id)
		// Fast reconnects: a replica comes back within seconds, and
		// gRPC's default backoff (up to 2 minutes) would leave a client
		// waiting long after it.
		conn, err := grpc.NewClient("unix://"+filepath.Join(e.dir, id, "replicatord.sock"),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, MaxDelay: time.Second}, MinConnectTimeout: 2 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		f.clients = append(f.clients, pb.NewReplicatorServiceClient(conn))
		f.reps = append(f.reps, nil)
		f.up = append(f.up, false)
	}
	return f
}

// start runs replica i (again) and waits until it serves.
func (f *haFleet) start(i int) {
	r := f.e.startReplica(f.ids[i])
	f.mu.Lock()
	f.reps[i], f.up[i] = r, true
	f.started++
	f.mu.Unlock()
}

func (f *haFleet) setDown(i int) {
	f.mu.Lock()
	f.up[i] = false
	if f.leader == i {
		f.leader = -1
	}
	f.mu.Unlock()
}

// reap restarts every replica that exited without the test's doing (a
// lost session, a crash), as the supervisor would, and records why.
func (f *haFleet) reap() {
	for i := range f.ids {
		f.mu.Lock()
		r, up := f.reps[i], f.up[i]
		f.mu.Unlock()
		if !up {
			continue
		}
		select {
		case <-r.p.done:
		default:
			continue
		}
		lines := r.p.output()
		if k := strings.LastIndex(lines, "\n"); k >= 0 {
			lines = lines[k+1:]
		}
		f.mu.Lock()
		f.exits = append(f.exits, fmt.Sprintf("%s: %v (%s)", f.ids[i], r.p.err, lines))
		f.mu.Unlock()
		f.e.t.Logf("replica %s exited unasked (%v): restarting it", f.ids[i], r.p.err)
		f.setDown(i)
		f.start(i)
	}
}

// hasLed reports whether this incarnation of replica i logged that it leads.
// A replica leads until its process ends (a lost session exits), so a
// live one that logged it leads, or is about to exit.
func (f *haFleet) hasLed(i int) bool {
	f.mu.Lock()
	r, up := f.reps[i], f.up[i]
	f.mu.Unlock()
	return up && strings.Contains(r.p.output(), "leading")
}

// waitLeader waits until a running replica other than except leads and
// another running replica's GetStatus names it, and returns its index.
func (f *haFleet) waitLeader(except int, timeout time.Duration) int {
	f.e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f.reap()
		for i := range f.ids {
			if i == except || !f.hasLed(i) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := f.clients[f.anyUp(i)].GetStatus(ctx, &pb.GetStatusRequest{})
			cancel()
			if err == nil && st.GetLeader() == f.ids[i] {
				f.mu.Lock()
				f.leader = i
				f.mu.Unlock()
				return i
			}
		}
		if time.Now().After(deadline) {
			f.e.t.Fatalf("no replica leads after %s (exits: %v)", timeout, f.exits)
		}
		time.Sleep(100 * time.Millisecond) // poll the replicas' state
	}
}

// anyUp returns a running replica other than not if there is one, else not.
func (f *haFleet) anyUp(not int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := 1; k <= len(f.ids); k++ {
		if i := (not + k) % len(f.ids); f.up[i] && i != not {
			return i
		}
	}
	return not
}

// follower returns a running replica that is not the leader last seen,
// round-robin.
func (f *haFleet) follower() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := 0; k < len(f.ids); k++ {
		f.next++
		if i := f.next % len(f.ids); f.up[i] && i != f.leader {
			return i
		}
	}
	for i := range f.ids { // only the leader runs
		if f.up[i] {
			return i
		}
	}
	return 0
}

// pickFollower and pickAny choose the replica of a watcher's next stream.
// pickFollower waits (10 s at most) for a running replica to have logged
// that it leads, so that a stream started during an election does not
// land on its winner.
func (f *haFleet) pickFollower() (string, pb.ReplicatorServiceClient) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		led := -1
		for i := range f.ids {
			if f.hasLed(i) {
				led = i
			}
		}
		if led >= 0 || time.Now().After(deadline) {
			f.mu.Lock()
			if led >= 0 {
				f.leader = led
			}
			f.mu.Unlock()
			i := f.follower()
			return f.ids[i], f.clients[i]
		}
		time.Sleep(50 * time.Millisecond) // poll the replicas' logs
	}
}

func (f *haFleet) pickAny() (string, pb.ReplicatorServiceClient) {
	f.mu.Lock()
	f.next++
	n := f.next
	f.mu.Unlock()
	i := f.anyUp(n % len(f.ids))
	return f.ids[i], f.clients[i]
}

// TestHAChaos: TestChaos's storm on an HA deployment. Three replicas over
// a 3-member etcd cluster and a faulty emulator; the leader is SIGKILLed
// mid-fleet again and again, paused past its lease (it must exit 1 once
// continued, and never lead again), one etcd member is killed and
// restored, the replica a follower's Watch stream runs through is killed;
// copies and cancels go through followers all along. Then the promises:
// no lost job, no duplicate or untracked copy (checked during the storm
// too), acknowledged cancels end CANCELLED (or SUCCEEDED when the copy won
// the race), every Watch stream agrees with the final ListJobs.
// -chaos.seed replays the choices.
func TestHAChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("HA chaos test skipped in -short mode")
	}
	const (
		policyImages, adhocImages = 8, 12
		minUp, maxUp              = 2500 * time.Millisecond, 4500 * time.Millisecond
		cancelShare               = 0.4
		quiesce                   = 4 * time.Minute
	)
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("HA chaos seed %d (replay the choices with -chaos.seed=%d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	began := time.Now()

	etcd := startEtcdCluster(t, 3, false)
	e := newEnv(t, append(chaosEmuFlags, "--seed", fmt.Sprint(seed%1000000))...)
	var eps []string
	for _, ep := range etcd.Endpoints() {
		eps = append(eps, fmt.Sprintf("%q", ep))
	}
	e.writeConfig(chaosConfig() + fmt.Sprintf("store:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    insecure: true\n    lease_ttl: 2s\n", strings.Join(eps, ", ")))
	policyImgs := e.addChaosImages("hapolicy", policyImages, map[string]string{"role": "chaos"}, 1)
	adhocImgs := e.addChaosImages("haadhoc0", adhocImages, map[string]string{"role": "adhoc"}, 96)
	planted := &plantedSet{ids: map[string]string{}}
	planted.add(e, "cn-beijing", "partial", map[string]string{job.TagPolicy: chaosPolicy, job.TagSourceImage: policyImgs[0], job.TagSourceRegion: source})
	planted.add(e, "cn-shanghai", "teamb", map[string]string{job.TagPolicy: chaosPolicy, job.TagSourceImage: policyImgs[1], job.TagSourceRegion: source,
		job.TagJobID: job.NewID(time.Now()), job.TagAttempt: "1", job.TagOwner: "team-b"})

	f := newHAFleet(t, e, 3)
	f.start(0)
	f.waitLeader(-1, 60*time.Second)
	f.start(1)
	f.start(2)

	ctx, stopWatchers := context.WithCancel(context.Background())
	watchers := []*watcher{
		{name: "follower-resume", resume: true, pick: f.pickFollower},
		{name: "any-resume", resume: true, pick: f.pickAny},
		{name: "any-snapshot", pick: f.pickAny},
	}
	var wg sync.WaitGroup
	for _, w := range watchers {
		w.view = map[string]*pb.Job{}
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, nil) }()
	}
	defer func() { stopWatchers(); wg.Wait() }()
	untracked := &untrackedChecker{e: e, planted: planted, pick: func() pb.ReplicatorServiceClient { _, c := f.pickAny(); return c }}
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

	// The storm's events, one a round, in a random order.
	events := []string{"kill", "kill", "kill", "kill", "kill", "stop", "stop", "etcd", "watched"}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })

	var (
		violations []string
		adhocJobs  []string
		cancelled  = map[string]bool{} // jobs whose cancel was acknowledged
		cancels    int
		cancelFail int
		cancelErrs = map[string]int{}
		copyFails  int
		kills      int
		inFlight   int // events that found copies in flight
		// whether a follower the follower watcher streamed through was killed
		followerKilled bool
	)
	violate := func(format string, args ...any) { violations = append(violations, fmt.Sprintf(format, args...)) }
	// live waits until the moment, restarting replicas that die unasked.
	live := func(until time.Time) {
		for time.Now().Before(until) {
			f.reap()
			time.Sleep(min(200*time.Millisecond, time.Until(until)+time.Millisecond)) // the chaos schedule itself
		}
	}
	submit := func(c adhocCall) {
		i := f.follower()
		ids, err := copyDetached(f.clients[i], c.image, c.dests)
		adhocJobs = append(adhocJobs, ids...)
		if err != nil {
			copyFails++
			t.Logf("copy %s through %s: %v (%d jobs seen)", c.image, f.ids[i], err, len(ids))
		}
	}
	for round, ev := range events {
		up := minUp + time.Duration(rng.Int63n(int64(maxUp-minUp)))
		deadline := time.Now().Add(up)
		member := rng.Intn(3)
		if ev == "etcd" {
			etcd.Kill(member) // down for the whole round, replicas running
		}
		share := (len(calls) + len(events) - 1) / len(events)
		var fresh []string
		for i := 0; i < share && len(calls) > 0; i++ {
			n := len(adhocJobs)
			submit(calls[0])
			calls = calls[1:]
			fresh = append(fresh, adhocJobs[n:]...)
		}
		live(deadline.Add(-up / 2))
		for _, id := range adhocJobs {
			p := cancelShare / float64(len(events))
			if slices.Contains(fresh, id) {
				p = cancelShare
			}
			if rng.Float64() >= p {
				continue
			}
			i := f.follower()
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := f.clients[i].Cancel(cctx, &pb.CancelRequest{JobIds: []string{id}})
			cancel()
			cancels++
			if err != nil {
				cancelFail++
				cancelErrs[status.Code(err).String()]++
				continue
			}
			// An answer means the cancel is recorded in the store (the
			// job was not terminal yet).
			for _, j := range resp.GetJobs() {
				cancelled[j.GetId()] = true
			}
		}
		live(deadline)
		// What the event finds in flight (the storm is sized so that
		// kills find copies in ECS).
		lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
		now, err := allJobs(lctx, f.clients[f.follower()])
		lcancel()
		busy := map[string]int{}
		for _, j := range now {
			if !job.State(j.GetState()).Terminal() {
				busy[strings.TrimPrefix(j.GetState().String(), "JOB_STATE_")]++
			}
		}
		if err == nil && busy["COPYING"]+busy["WAITING"] > 0 {
			inFlight++
		}
		L := f.waitLeader(-1, 60*time.Second)
		switch ev {
		case "kill":
			f.setDown(L)
			f.reps[L].p.kill9()
			kills++
			f.start(L)
		case "stop":
			r := f.reps[L]
			f.setDown(L)
			if err := r.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			f.waitLeader(L, 60*time.Second)
			r.p.mu.Lock()
			mark := len(r.p.lines)
			r.p.mu.Unlock()
			if err := r.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if code := r.p.wait(30 * time.Second); code != 1 {
				violate("round %d: the leader %s paused past its lease exited %d once continued, want 1", round, f.ids[L], code)
			}
			r.p.mu.Lock()
			after := strings.Join(r.p.lines[mark:], "\n")
			r.p.mu.Unlock()
			if !strings.Contains(after, "the etcd session (lease) ended") || strings.Contains(after, "leading") || strings.Contains(after, "adopted copy") {
				violate("round %d: the continued leader %s did not exit on its lost session alone:\n%s", round, f.ids[L], after)
			}
			f.start(L)
		case "etcd":
			etcd.Restart(member)
		case "watched":
			// Kill the follower the follower's Watch runs through: the
			// stream fails over to another replica, resuming. Its replica
			// may have won an election since it connected; then the
			// leader dies first and the watch reconnects to a follower.
			fw := watchers[0]
			for try := 0; ; try++ {
				fw.mu.Lock()
				via, streams := fw.via, fw.streams
				fw.mu.Unlock()
				i := slices.Index(f.ids, via)
				if i < 0 {
					t.Fatalf("the follower watcher streams through %q", via)
				}
				f.setDown(i)
				f.reps[i].p.kill9()
				kills++
				f.start(i)
				if i != L {
					followerKilled = true
					break
				}
				if try == 3 {
					violate("round %d: the follower watcher's replica led at each of 4 tries", round)
					break
				}
				L = f.waitLeader(-1, 60*time.Second)
				fw.waitStreams(streams+1, 60*time.Second, t)
			}
		}
		t.Logf("round %d: %s (leader was %s) after %s, jobs not finished: %s", round, ev, f.ids[L], up.Round(time.Millisecond), fmtCounts(busy))
		planted.forge(e, round)
		planted.add(e, chaosRegions[round%len(chaosRegions)], fmt.Sprintf("unknown%02d", round), map[string]string{
			job.TagPolicy: chaosPolicy, job.TagSourceImage: policyImgs[round%len(policyImgs)], job.TagSourceRegion: source,
			job.TagJobID: job.NewID(time.Now()), job.TagAttempt: "1", job.TagOwner: job.DefaultOwner})
	}
	for _, c := range calls {
		submit(c)
	}
	stormEnd := time.Now()
	t.Logf("storm done after %s: %d kills, %d ad-hoc jobs, %d cancels (%d acknowledged, %d refused or failed: %s), %d copy calls failed, replicas exited unasked: %v",
		time.Since(began).Round(time.Millisecond), kills, len(adhocJobs), cancels, len(cancelled), cancelFail, fmtCounts(cancelErrs), copyFails, f.exits)

	e.clearFaults()
	f.waitLeader(-1, 60*time.Second)
	client := f.clients[f.follower()]
	e.waitQuiet(client, quiesce)
	quiet := time.Now()
	jobs := e.waitPolicyConverged(client, quiesce)
	t.Logf("quiet %s after the storm, the policy converged %s later", quiet.Sub(stormEnd).Round(time.Millisecond), time.Since(quiet).Round(time.Millisecond))
	f.reap()

	stopUntracked()
	<-untrackedDone
	untracked.confirm(violate)
	all, err := fetchImages(e.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	planted.check(all, violate)
	checkECS(jobs, planted.drop(e.chaosImages()), policyImgs, violate)
	byID := map[string]*pb.Job{}
	for _, j := range jobs {
		byID[j.GetId()] = j
	}
	for _, id := range adhocJobs {
		if byID[id] == nil {
			violate("job %s, returned by Copy, is not in the final ListJobs", id)
		}
	}
	for id := range cancelled {
		if j := byID[id]; j != nil && j.GetState() != pb.JobState_JOB_STATE_CANCELLED && j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
			violate("job %s, cancelled, ended %s (want CANCELLED, or SUCCEEDED if the copy won the race)", id, j.GetState())
		}
	}
	for _, w := range watchers {
		w.check(jobs, violate)
	}
	if inFlight < len(events)/2 {
		violate("only %d of %d events found copies in flight: the storm is too small to test failover mid-copy", inFlight, len(events))
	}
	if !followerKilled {
		violate("the follower watcher's follower was never killed")
	}
	if fw := watchers[0]; fw.failovers == 0 {
		violate("the follower's Watch stream never failed over to another replica (streams %d)", fw.streams)
	}
	// Every replica agrees on one leader and the three members at the end
	// (a killed replica's member entry lasts until its lease runs out).
	L := f.waitLeader(-1, 60*time.Second)
	for i := range f.ids {
		deadline := time.Now().Add(30 * time.Second)
		for {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := f.clients[i].GetStatus(sctx, &pb.GetStatusRequest{}, grpc.WaitForReady(true))
			cancel()
			if err == nil && st.GetLeader() == f.ids[L] && len(st.GetMembers()) == len(f.ids) {
				break
			}
			if time.Now().After(deadline) {
				violate("status via %s at the end: leader %q, %d members (err %v); want %s and %d", f.ids[i], st.GetLeader(), len(st.GetMembers()), err, f.ids[L], len(f.ids))
				break
			}
			time.Sleep(200 * time.Millisecond) // poll, as an operator would
		}
	}

	states := map[string]int{}
	for _, j := range jobs {
		states[strings.TrimPrefix(j.GetState().String(), "JOB_STATE_")]++
	}
	var msgs, streams, failovers int
	for _, w := range watchers {
		msgs += w.messages
		streams += w.streams
		failovers += w.failovers
	}
	t.Logf("HA chaos: seed %d; %d jobs (%s); %d replica starts, %d kills, events %v; %d cancels acknowledged; watch streams/messages/failovers %d/%d/%d; untracked checks %d; %s; %d violations",
		seed, len(jobs), fmtCounts(states), f.started, kills, events, len(cancelled), streams, msgs, failovers, untracked.checks,
		time.Since(began).Round(time.Second), len(violations))
	for i, v := range violations {
		if i == 50 {
			t.Errorf("... and %d more violations", len(violations)-50)
			break
		}
		t.Errorf("violation: %s", v)
	}
}

// waitStreams waits until the watcher has opened n streams.
func (w *watcher) waitStreams(n int, timeout time.Duration, t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		got := w.streams
		w.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher %s opened %d streams after %s, want %d", w.name, got, timeout, n)
		}
		time.Sleep(50 * time.Millisecond) // poll the watcher's count
	}
}
