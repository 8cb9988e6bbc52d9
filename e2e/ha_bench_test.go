package e2e

// Benchmarks of high availability on etcd (issue 14): durable transitions
// on a 3-member etcd against bbolt, failover time of real replicas, and
// Watch fan-out through a follower. Every etcd here is a cluster of real
// etcd processes with fsync on, as production runs it; the replicas are
// the real binary with the default lease_ttl. BENCHMARKS.md ("High
// availability on etcd") has the commands and the figures.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/state/etcdstore"
)

// BenchmarkStoreTransitions measures durable state transitions per second
// on bbolt and on etcd side by side, with the workload of
// internal/state's BenchmarkUpdateParallel (64 concurrent writers flipping
// jobs WAITING <-> COPYING, over 64 and over 4,096 jobs) and of
// BenchmarkUpdateSerial (one writer: ns/op is the latency of a lone
// durable update). Durable means Update returned: fsynced by bbolt,
// committed by the quorum of a 3-member etcd cluster with fsync on (each
// etcd Update is a linearizable read and a conditional transaction).
//
//	go test -run '^$' -bench StoreTransitions -benchtime 2s ./e2e
func BenchmarkStoreTransitions(b *testing.B) {
	cluster := startEtcdCluster(b, 3, true)
	cli, err := clientv3.New(clientv3.Config{Endpoints: cluster.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	var prefixes atomic.Int64
	backends := []struct {
		name string
		open func(b *testing.B) state.Store
	}{
		{"bbolt", func(b *testing.B) state.Store {
			d, err := state.Open(filepath.Join(b.TempDir(), "state.db"), state.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return d
		}},
		{"etcd3", func(b *testing.B) state.Store {
			// A prefix of its own per run: the framework calls a
			// sub-benchmark again with a larger b.N.
			s, err := etcdstore.New(context.Background(), cli, etcdstore.Options{Prefix: fmt.Sprintf("/bench/%d/", prefixes.Add(1))})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	}
	for _, w := range []struct{ writers, jobs int }{{64, 64}, {64, 4096}, {1, 1}} {
		for _, be := range backends {
			b.Run(fmt.Sprintf("writers=%d/jobs=%d/%s", w.writers, w.jobs, be.name), func(b *testing.B) {
				benchTransitions(b, be.open(b), w.writers, w.jobs)
			})
		}
	}
}

func benchTransitions(b *testing.B, st state.Store, writers, n int) {
	ctx := context.Background()
	jobs := make([]*job.Job, n)
	now := time.Now().Add(-time.Hour)
	for i := range jobs {
		jobs[i] = transitionJob(now.Add(time.Duration(i)*time.Millisecond), i)
	}
	// etcd refuses a transaction of more than 128 operations by default
	// (--max-txn-ops); a new job takes three, plus one per transaction.
	for off := 0; off < n; off += 32 {
		if err := st.Create(ctx, jobs[off:min(off+32, n)]...); err != nil {
			b.Fatal(err)
		}
	}
	flip := func(j *job.Job) error {
		// WAITING <-> COPYING: a legal transition every time.
		if j.State == job.StateWaiting {
			j.State = job.StateCopying
		} else {
			j.State = job.StateWaiting
		}
		j.ProgressPercent = (j.ProgressPercent + 1) % 100
		return nil
	}
	b.ResetTimer()
	if writers == 1 {
		for i := 0; i < b.N; i++ {
			if _, err := st.Update(ctx, jobs[i%n].ID, flip); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		var next atomic.Int64
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((writers + procs - 1) / procs)
		b.RunParallel(func(pb *testing.PB) {
			w := next.Add(1)
			for i := int64(0); pb.Next(); i++ {
				id := jobs[(w+i*int64(writers))%int64(n)].ID
				if _, err := st.Update(ctx, id, flip); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}

// transitionJob is a job of realistic size, as internal/state's benchJob.
func transitionJob(now time.Time, i int) *job.Job {
	return &job.Job{
		ID:                     job.NewID(now),
		Policy:                 fmt.Sprintf("policy-%d", i%20),
		SourceRegion:           "cn-hangzhou",
		SourceImageID:          fmt.Sprintf("m-bp1%015d", i/8),
		SourceImageName:        "ubuntu-22.04-golden-2026-11",
		SizeGiB:                40,
		DestinationRegion:      benchRegions[i%len(benchRegions)],
		DestinationImageName:   "ubuntu-22.04-golden-2026-11",
		DestinationDescription: "copied by replicatord",
		Tags:                   map[string]string{"team": "infra", "env": "prod"},
		State:                  job.StateWaiting,
		Attempts:               1,
		CreateTime:             now,
	}
}

// benchRegions are the destinations the benchmarks spread copies over, so
// that no region's copy slots in ecsemu hold a copy back.
var benchRegions = []string{"cn-beijing", "cn-shanghai", "cn-shenzhen", "cn-qingdao", "cn-zhangjiakou",
	"cn-chengdu", "cn-guangzhou", "cn-hongkong", "ap-southeast-1", "eu-central-1", "us-west-1", "ap-northeast-1"}

// haEnv is ecsemu, a 3-member etcd cluster with fsync on, and a config
// for replicas on it with the default lease_ttl (5 s).
func haEnv(b *testing.B) (*env, *etcdCluster) {
	cluster := startEtcdCluster(b, 3, true)
	e := newEnv(b)
	var eps []string
	for _, ep := range cluster.Endpoints() {
		eps = append(eps, fmt.Sprintf("%q", ep))
	}
	e.writeConfig(fmt.Sprintf("store:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    insecure: true\n", strings.Join(eps, ", ")))
	return e, cluster
}

// dialReady connects to a replica's socket and waits until the
// connection is ready, so that a timed call does not include the dial.
func dialReady(b *testing.B, socket string) *grpc.ClientConn {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			conn.Close()
			b.Fatalf("connect to %s: still %s after 30 s", socket, s)
		}
	}
	return conn
}

// copyReq is a detached copy of the 20 GiB demo image to region, made
// even when one exists (every sample is a new job).
func copyReq(region string) *pb.CopyRequest {
	return &pb.CopyRequest{SourceRegion: source, SourceImageId: imgAlinux, DestinationRegions: []string{region},
		Detach: true, AllowDuplicate: true}
}

// copyAccepted runs a detached Copy to its end: every job accepted by ECS
// (it has a destination image id), or terminal.
func copyAccepted(ctx context.Context, client pb.ReplicatorServiceClient, req *pb.CopyRequest) error {
	stream, err := client.Copy(ctx, req)
	if err != nil {
		return err
	}
	var last *pb.Job
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("copy stream: %w", err)
		}
		last = m.GetJob()
	}
	if last == nil || last.GetDestinationImageId() == "" {
		return fmt.Errorf("copy ended without an ECS image: %v", last)
	}
	return nil
}

// BenchmarkHAFailover measures failover on 3 replicas over a 3-member
// etcd cluster (fsync on) with the default lease_ttl of 5 s, over ecsemu.
// Each sample: the leader is sent the signal and, as soon as it has
// exited, a detached Copy is sent through a surviving replica on a
// connection dialled beforehand. The sample runs from the instant the
// signal is sent (so it includes the old leader's exit) to that Copy
// returning, i.e. until the new leader's scheduler has picked the job up
// from the store and ECS has accepted its CopyImage (the job has a
// destination image id, durably recorded): "the new leader makes
// progress", including the lease running out, the election, the new
// leader starting its scheduler and one copy submission. The stopped replica is then
// started again, as its supervisor would, so that two followers are there
// for the next sample. "SIGKILL" is a crash (≥ 10 samples per run: the
// lease must expire); "SIGTERM" a graceful stop, where the leader resigns.
//
//	go test -run '^$' -bench HAFailover -benchtime 1x ./e2e
func BenchmarkHAFailover(b *testing.B) {
	e, _ := haEnv(b)
	reps := map[string]*replica{}
	for _, id := range []string{"r1", "r2", "r3"} {
		reps[id] = e.startReplica(id)
	}
	reps["r1"].p.waitLine("leading", 60*time.Second)
	var region atomic.Int64
	for _, row := range []struct {
		name    string
		samples int
		sig     syscall.Signal
	}{{"SIGKILL", 10, syscall.SIGKILL}, {"SIGTERM", 5, syscall.SIGTERM}} {
		b.Run(row.name, func(b *testing.B) {
			b.StopTimer() // failoverOnce times the failovers only
			var secs []float64
			for range row.samples * b.N {
				secs = append(secs, failoverOnce(b, e, reps, row.sig, int(region.Add(1))))
				b.Logf("%s failover %d: %.2f s", row.name, len(secs), secs[len(secs)-1])
			}
			b.ReportMetric(median(secs), "failover-median-s")
			b.ReportMetric(slices.Max(secs), "failover-max-s")
		})
	}
}

// failoverOnce stops the leader with sig and returns the seconds until a
// Copy sent through a survivor right after is accepted by ECS; then it
// starts the stopped replica again.
func failoverOnce(b *testing.B, e *env, reps map[string]*replica, sig syscall.Signal, n int) float64 {
	// Every replica is up (the previous one restarted) and agrees on a
	// leader before the next stop.
	var leader string
	for _, r := range reps {
		st := e.waitLeaderAny(r, 60*time.Second)
		if leader != "" && st.Leader != leader {
			b.Fatalf("%s reports leader %s, another %s", r.id, st.Leader, leader)
		}
		leader = st.Leader
	}
	old, ok := reps[leader]
	if !ok {
		b.Fatalf("leader %q is none of the replicas", leader)
	}
	var via *replica
	for id, r := range reps {
		if id != leader {
			via = r
			break
		}
	}
	conn := dialReady(b, via.socket)
	defer conn.Close()
	client := pb.NewReplicatorServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	b.StartTimer()
	begin := time.Now()
	if err := old.p.cmd.Process.Signal(sig); err != nil {
		b.Fatal(err)
	}
	// The Copy goes in once the old leader is gone, so that only a new
	// leader can submit it (a resigning one still leads for a moment).
	code := old.p.wait(30 * time.Second)
	err := copyAccepted(ctx, client, copyReq(benchRegions[n%len(benchRegions)]))
	took := time.Since(begin)
	b.StopTimer()
	if err != nil {
		b.Fatalf("copy through %s after stopping leader %s: %v", via.id, leader, err)
	}
	if sig == syscall.SIGTERM && code != 0 {
		b.Fatalf("leader %s exited %d on SIGTERM", leader, code)
	}
	reps[leader] = e.startReplica(leader)
	return took.Seconds()
}

// waitLeaderAny waits until r reports some leader.
func (e *env) waitLeaderAny(r *replica, timeout time.Duration) haStatus {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := e.statusAt(r)
		if st.Leader != "" {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s reports no leader after %s", r.id, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// BenchmarkWatchFanoutFollower measures Watch delivery through gRPC: N
// Watch streams (100 and 1,000) on one replica while copies are made
// through the leader, one at a time. The latency of an event runs from
// the instant the Copy RPC that created the job was sent to the receipt
// of the job's first event by a watcher: it includes the Copy's source
// lookup in ECS (one DescribeImages to ecsemu), the durable create and
// the fan-out. The spread runs from the job's first receipt by any
// watcher to each receipt: the fan-out alone. The scheduler's own transitions of those jobs (submitting,
// copying) reach the watchers too, as load, untimed. Rows: watchers on a
// follower (etcd, 3 members, fsync on), on the leader, and on a bbolt
// daemon (writes and watchers on the one daemon), in the same run.
//
//	go test -run '^$' -bench WatchFanoutFollower -benchtime 100x ./e2e
func BenchmarkWatchFanoutFollower(b *testing.B) {
	e, _ := haEnv(b)
	leader := e.startReplica("r1")
	leader.p.waitLine("leading", 60*time.Second)
	follower := e.startReplica("r2")
	e.waitLeader(follower, "r1", 60*time.Second)

	// A bbolt daemon of its own on the same ecsemu.
	etcdConfig := e.config
	e.config = filepath.Join(e.dir, "bbolt.yaml")
	e.writeConfig("")
	bdir := filepath.Join(e.dir, "bbolt")
	bb := start(b, "replicatord", credsEnv(), "--config", e.config, "--data-dir", bdir)
	bb.waitLine("replicatord ready", 60*time.Second)
	e.config = etcdConfig
	bsock := filepath.Join(bdir, "replicatord.sock")

	var region atomic.Int64
	for _, n := range []int{100, 1000} {
		for _, row := range []struct{ name, watch, write string }{
			{"etcd-follower", follower.socket, leader.socket},
			{"etcd-leader", leader.socket, leader.socket},
			{"bbolt", bsock, bsock},
		} {
			b.Run(fmt.Sprintf("watchers=%d/%s", n, row.name), func(b *testing.B) {
				benchWatchFanout(b, n, row.watch, row.write, &region)
			})
		}
	}
}

// fanWatcher is one Watch stream, recording when it first saw each job.
type fanWatcher struct {
	mu   sync.Mutex
	seen map[string]time.Time
	err  error
}

// waitSeen waits until w has seen job id and returns when it first did.
func (w *fanWatcher) waitSeen(b *testing.B, id string, deadline time.Time) time.Time {
	for {
		w.mu.Lock()
		at, ok := w.seen[id]
		err := w.err
		w.mu.Unlock()
		switch {
		case ok:
			return at
		case err != nil:
			b.Fatalf("watcher ended: %v", err)
		case time.Now().After(deadline):
			b.Fatalf("a watcher has not seen job %s after 2 minutes", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func benchWatchFanout(b *testing.B, n int, watchSock, writeSock string, region *atomic.Int64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One connection per 100 streams, as many clients would have.
	var conns []*grpc.ClientConn
	for i := 0; i < (n+99)/100; i++ {
		conns = append(conns, dialReady(b, watchSock))
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ws := make([]*fanWatcher, n)
	var ready, ended sync.WaitGroup
	for i := range ws {
		w := &fanWatcher{seen: map[string]time.Time{}}
		ws[i] = w
		stream, err := pb.NewReplicatorServiceClient(conns[i/100]).Watch(ctx, &pb.WatchRequest{})
		if err != nil {
			b.Fatal(err)
		}
		ready.Add(1)
		ended.Add(1)
		go func() {
			defer ended.Done()
			snap := true
			for {
				m, err := stream.Recv()
				now := time.Now()
				if err != nil {
					if snap {
						ready.Done()
					}
					if ctx.Err() == nil {
						w.mu.Lock()
						w.err = err
						w.mu.Unlock()
					}
					return
				}
				if m.GetSnapshotComplete() {
					snap = false
					ready.Done()
					continue
				}
				if snap {
					continue
				}
				w.mu.Lock()
				if _, ok := w.seen[m.GetJob().GetId()]; !ok {
					w.seen[m.GetJob().GetId()] = now
				}
				w.mu.Unlock()
			}
		}()
	}
	ready.Wait()
	wconn := dialReady(b, writeSock)
	defer wconn.Close()
	writer := pb.NewReplicatorServiceClient(wconn)

	sent := map[string]time.Time{}
	b.ResetTimer()
	for range b.N {
		id, at := copyCreated(b, writer, copyReq(benchRegions[int(region.Add(1))%len(benchRegions)]))
		sent[id] = at
	}
	// Wait (not timed) until every watcher has seen every job.
	deadline := time.Now().Add(2 * time.Minute)
	recvs := map[string][]time.Time{}
	for _, w := range ws {
		for id := range sent {
			recvs[id] = append(recvs[id], w.waitSeen(b, id, deadline))
		}
	}
	b.StopTimer()
	cancel()
	ended.Wait()
	// lat: from the Copy sent to each receipt; spread: from the job's
	// first receipt by any watcher to each receipt, the fan-out alone
	// (without the Copy's source lookup and create).
	var lat, spread []time.Duration
	for id, rs := range recvs {
		first := slices.MinFunc(rs, func(a, b time.Time) int { return a.Compare(b) })
		for _, r := range rs {
			lat = append(lat, r.Sub(sent[id]))
			spread = append(spread, r.Sub(first))
		}
	}
	q := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(lat, 0.50), "p50_ms")
	b.ReportMetric(q(lat, 0.99), "p99_ms")
	b.ReportMetric(q(lat, 1), "max_ms")
	b.ReportMetric(q(spread, 0.50), "spread-p50_ms")
	b.ReportMetric(q(spread, 0.99), "spread-p99_ms")
}

// copyCreated sends a Copy and returns the id of the job it created and
// the instant the RPC was sent, once the first answer (the job, stored)
// arrives; the rest of the stream is not waited for.
func copyCreated(b *testing.B, client pb.ReplicatorServiceClient, req *pb.CopyRequest) (string, time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel() // ends the stream; the job lives on in the store
	at := time.Now()
	stream, err := client.Copy(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil {
		b.Fatalf("copy: %v", err)
	}
	if m.GetOutcome() != pb.CopyOutcome_COPY_OUTCOME_CREATED {
		b.Fatalf("copy answered %v, want a new job", m)
	}
	return m.GetJob().GetId(), at
}
