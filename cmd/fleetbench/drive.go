package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/transport"
)

// driveResult is what the client saw of one daemon run.
type driveResult struct {
	Submitted      int
	Succeeded      int
	Failed         int
	FailedThrottle int
	Cancelled      int
	FailCodes      map[string]int
	FirstSubmit    time.Time
	LastTerminal   time.Time
	SubmitErrors   []string
	// SucceededAt is when the client saw each job SUCCEEDED, by its
	// destination image id (for the completion detection lag).
	SucceededAt map[string]time.Time
	// The urgent copy's job, when its Copy was sent, and when the Watch
	// first showed it COPYING (or SUCCEEDED, had it ended between two
	// messages); zero when it never did.
	UrgentJob                 string
	UrgentSent, UrgentCopying time.Time
}

// urgentPlan is the urgent ad-hoc copy of a run: one image to one region,
// After (wall time) the first Copy of the fleet.
type urgentPlan struct {
	Image  fleetImage
	Region string
	After  time.Duration
}

// drive submits one detached Copy per image to every region, all at once
// (a detached Copy returns only when ECS accepted its copies, so the
// streams run side by side), and, with urgent, one more Copy of the urgent
// image to its region at its time; then follows one Watch until every job
// is terminal. The urgent copy is sent with priority 100 (the fleet's
// have 0), as a user who needs it first would.
func drive(ctx context.Context, socket string, f *fleet, urgent *urgentPlan) (*driveResult, error) {
	conn, err := transport.Dial(transport.ClientConfig{Address: "unix://" + socket})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := pb.NewReplicatorServiceClient(conn)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	w := newWatcher()
	stream, err := client.Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	watchErr := make(chan error, 1)
	go func() { watchErr <- w.follow(stream) }()
	// Wait for the (empty) snapshot so that no event can be missed.
	select {
	case <-w.synced:
	case err := <-watchErr:
		return nil, fmt.Errorf("watch: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	res := &driveResult{FailCodes: map[string]int{}, FirstSubmit: time.Now()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, im := range f.Images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids, err := copyOne(ctx, client, im, f.Regions, 0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.SubmitErrors = append(res.SubmitErrors, fmt.Sprintf("%s: %v", im.ID, err))
			}
			w.expect(ids)
		}()
	}
	if urgent != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendUrgent(ctx, client, urgent, res, &mu, w)
		}()
	}
	wg.Wait()
	w.submitted()
	select {
	case <-w.allDone:
	case err := <-watchErr:
		return nil, fmt.Errorf("watch ended before every job finished: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	res.Submitted = len(w.expected)
	res.SucceededAt = map[string]time.Time{}
	if res.UrgentJob != "" {
		res.UrgentCopying = w.startedAt[res.UrgentJob]
	}
	for id := range w.expected {
		j := w.jobs[id]
		if t := w.termAt[id]; t.After(res.LastTerminal) {
			res.LastTerminal = t
		}
		switch j.GetState() {
		case pb.JobState_JOB_STATE_SUCCEEDED:
			res.Succeeded++
			res.SucceededAt[j.GetDestinationImageId()] = w.termAt[id]
		case pb.JobState_JOB_STATE_CANCELLED:
			res.Cancelled++
		case pb.JobState_JOB_STATE_FAILED:
			res.Failed++
			code := j.GetError().GetCode()
			res.FailCodes[code]++
			if strings.HasPrefix(code, "Throttling") {
				res.FailedThrottle++
			}
		}
	}
	return res, nil
}

// sendUrgent sends the urgent copy's Copy at its time and records it in
// res (under mu) and with the watcher.
func sendUrgent(ctx context.Context, client pb.ReplicatorServiceClient, urgent *urgentPlan, res *driveResult, mu *sync.Mutex, w *watcher) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(res.FirstSubmit.Add(urgent.After))):
	}
	sent := time.Now()
	ids, err := copyOne(ctx, client, urgent.Image, []string{urgent.Region}, 100)
	mu.Lock()
	defer mu.Unlock()
	res.UrgentSent = sent
	if err != nil {
		res.SubmitErrors = append(res.SubmitErrors, fmt.Sprintf("urgent %s: %v", urgent.Image.ID, err))
	}
	if len(ids) > 0 {
		res.UrgentJob = ids[0]
	}
	w.expect(ids)
}

// copyOne sends one detached Copy and drains its stream.
func copyOne(ctx context.Context, client pb.ReplicatorServiceClient, im fleetImage, regions []string, priority int32) ([]string, error) {
	s, err := client.Copy(ctx, &pb.CopyRequest{SourceRegion: sourceRegion, SourceImageId: im.ID, DestinationRegions: regions, Detach: true, Priority: priority})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for {
		resp, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return ids, nil
		}
		if err != nil {
			return ids, err
		}
		if id := resp.GetJob().GetId(); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
}

// watcher keeps the latest state of every job from one Watch stream.
type watcher struct {
	mu       sync.Mutex
	jobs     map[string]*pb.Job
	expected map[string]bool
	pending  int // expected jobs not yet terminal
	all      bool
	termAt   map[string]time.Time // when the client saw each job terminal
	// startedAt is when the client first saw each job COPYING, or
	// SUCCEEDED without COPYING before (an event coalesced away).
	startedAt map[string]time.Time
	synced    chan struct{}
	allDone   chan struct{}
	closed    bool
}

func newWatcher() *watcher {
	return &watcher{jobs: map[string]*pb.Job{}, termAt: map[string]time.Time{}, startedAt: map[string]time.Time{}, expected: map[string]bool{}, synced: make(chan struct{}), allDone: make(chan struct{})}
}

func terminal(s pb.JobState) bool {
	return s == pb.JobState_JOB_STATE_SUCCEEDED || s == pb.JobState_JOB_STATE_FAILED || s == pb.JobState_JOB_STATE_CANCELLED
}

func (w *watcher) follow(stream pb.ReplicatorService_WatchClient) error {
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.GetSnapshotComplete() {
			close(w.synced)
			continue
		}
		if j := resp.GetJob(); j != nil {
			w.observe(j, time.Now())
		}
	}
}

// observe takes in one job message seen at now.
func (w *watcher) observe(j *pb.Job, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.jobs[j.GetId()]
	w.jobs[j.GetId()] = j
	if st := j.GetState(); st == pb.JobState_JOB_STATE_COPYING || st == pb.JobState_JOB_STATE_SUCCEEDED {
		if _, ok := w.startedAt[j.GetId()]; !ok {
			w.startedAt[j.GetId()] = now
		}
	}
	if terminal(j.GetState()) && (old == nil || !terminal(old.GetState())) {
		w.termAt[j.GetId()] = now
		if w.expected[j.GetId()] {
			w.pending--
		}
	}
	w.check()
}

// expect adds jobs the client submitted. Called with the result mutex only.
func (w *watcher) expect(ids []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if w.expected[id] {
			continue
		}
		w.expected[id] = true
		if _, done := w.termAt[id]; done {
			continue
		}
		w.pending++
	}
}

// submitted says every Copy stream has ended: the set of jobs is known.
func (w *watcher) submitted() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = true
	w.check()
}

func (w *watcher) check() {
	if w.all && w.pending == 0 && !w.closed {
		w.closed = true
		close(w.allDone)
	}
}
