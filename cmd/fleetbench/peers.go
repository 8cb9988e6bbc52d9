package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/cloud/aliyun"
)

// The peers that run for real, over HTTP against a fresh emulator, through
// internal/cloud/aliyun's Provider: the vendor SDK behind our thin adapter,
// which neither retries nor paces (the scheduler does that, and it is not
// used here), so every call a peer makes is one HTTP call the emulator
// counts. The Alibaba SDK may be imported only by internal/cloud/aliyun,
// hence the adapter rather than the SDK's ecs.Client directly; the adapter
// adds argument checks and error classification, no calls.

// scriptParams shape the smart script of issue 12: a user's ~60 lines over
// the vendor SDK.
type scriptParams struct {
	// Submitters is how many CopyImage calls are in flight while the
	// script submits every copy at once, largest first.
	Submitters int
	// Batch is how many of the oldest pending copies of a region one
	// DescribeImages asks for (ECS takes at most 100 ids).
	Batch int
	// The next poll of a region comes clamp(W × PerWaiting, PollMin,
	// PollMax) after the last, W being the copies that poll saw Waiting.
	PerWaiting, PollMin, PollMax time.Duration
}

var defaultScript = scriptParams{Submitters: 16, Batch: cloud.MaxIDsPerDescribe, PerWaiting: time.Minute, PollMin: time.Minute, PollMax: 45 * time.Minute}

// peerRun is what a real peer run produced. Times are emulated, from the
// peer's first call.
type peerRun struct {
	// Makespan: the script, to the last copy it saw end; Packer, which
	// never looks, to the end of ECS's queue of the copies it started.
	Makespan time.Duration
	// ECSDone is when ECS finished the last copy it accepted (replayed).
	ECSDone time.Duration
	// Copies the peer set out to make; Accepted CopyImage calls (the
	// script's second attempts included); Succeeded and Failed (given up)
	// copies as the peer saw them, Cancelled by the peer.
	Copies, Accepted, Succeeded, Failed, Cancelled int
	// Refused CopyImage calls (not retried), by code. Copies counts the
	// urgent copy too.
	Refused map[string]int
	// CompletionUnknown: the peer never learns whether its copies ended.
	CompletionUnknown bool
	// FailedAttempts: accepted copies that ECS ended CreateFailed (its own
	// record); Failed above counts the copies the peer gave up on.
	FailedAttempts int
	// Urgent is the urgent copy's start latency (emulated) as the peer saw
	// it: CopyImage sent to the first poll that saw it Creating (or ended);
	// UrgentSeen is false when there was no urgent copy or it never started.
	Urgent     time.Duration
	UrgentSeen bool
	// Lags: Available in ECS to seen by the peer, per copy it saw succeed.
	Lags  []time.Duration
	Calls calls
	// GivenUp lists the copies the script gave up ("region size GiB").
	GivenUp []string
	// Regions: the script's run per destination region (replayed).
	Regions []regionStat
}

// newPeerProvider connects the SDK adapter to the emulator.
func newPeerProvider(emu *emulator, concurrency int) (*aliyun.Provider, error) {
	return aliyun.New(aliyun.Config{
		Endpoint:       emu.Endpoint,
		Insecure:       true, // the emulator on 127.0.0.1, plain HTTP
		Region:         sourceRegion,
		Credentials:    aliyun.Credentials{AccessKeyID: emu.KeyID, AccessKeySecret: emu.Secret},
		MaxConcurrency: concurrency,
		UserAgent:      "fleetbench-peer",
	})
}

// byLargest is the fleet's copies, largest first (then fleet order). With
// the copy-conflict rule only an image's first copy is accepted at once,
// so the script starts image i's copies at region i mod R rather than
// sending every image's first copy to the same region.
func byLargest(f *fleet) []copyTask {
	ts := tasksOf(f)
	if f.CopyConflict {
		n := len(f.Regions)
		for i := range f.Images {
			one := ts[i*n : (i+1)*n]
			rot := slices.Concat(one[i%n:], one[:i%n])
			copy(one, rot)
		}
	}
	sort.SliceStable(ts, func(a, b int) bool { return ts[a].im.SizeGiB > ts[b].im.SizeGiB })
	return ts
}

// runScript runs the smart script on a fresh emulator: it submits every
// copy at once, largest first (ECS queues what its slots cannot take yet
// as Waiting; a throttled CopyImage is retried), then polls each region
// with one DescribeImages for its oldest ≤ Batch pending copies, the next
// poll clamp(W × PerWaiting, PollMin, PollMax) later.
//
// What a user's script does beyond the happy path, as it would be written:
//   - a copy that ends CreateFailed is deleted (it holds the copy's name)
//     and submitted once more, right when a poll sees it; a second failure
//     is final;
//   - with ECS's copy-conflict rule, a CopyImage refused with
//     ImageCopyConflict while the first copies go out is kept, and sent when
//     a poll sees that image's copy end (one copy of a source at a time);
//     a later refusal is retried after PollMin;
//   - the urgent copy (fleet.Urgent) is sent at once, when it comes, and
//     joins its region's pending list like any other copy: the script
//     learns it started at the first poll that sees it Creating.
func runScript(ctx context.Context, o *options, f *fleet, scale float64, p scriptParams) (peerRun, error) {
	emu, err := startEmulator(f, scale, o.throttle, int64(o.seed))
	if err != nil {
		return peerRun{}, err
	}
	defer emu.close()
	prov, err := newPeerProvider(emu, p.Submitters)
	if err != nil {
		return peerRun{}, err
	}
	defer prov.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	tasks := byLargest(f)
	s := &script{
		ctx: ctx, prov: prov, p: p, f: f, wall: func(d time.Duration) time.Duration { return scaled(d, scale) },
		pending: map[string][]string{}, copyOf: map[string]*scriptCopy{}, deferred: map[string][]*scriptCopy{},
		seenAt: map[string]time.Time{}, outstanding: len(tasks),
		out: peerRun{Copies: len(tasks), Refused: map[string]int{}},
	}
	if f.Urgent != nil {
		s.outstanding++
		s.out.Copies++
	}
	s.t0 = time.Now()
	work := make(chan copyTask)
	var wg sync.WaitGroup
	for range p.Submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				s.submit(&scriptCopy{t: t}, false)
			}
		}()
	}
	for _, t := range tasks {
		work <- t
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return peerRun{}, err
	}

	errs := make(chan error, len(f.Regions)+1)
	if f.Urgent != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.sendUrgent(f.lowerBound().UrgentAt)
		}()
	}
	for _, r := range f.Regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.pollRegion(r)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return peerRun{}, err
		}
	}
	out := s.out
	out.Makespan = time.Duration(float64(s.last.Sub(s.t0)) * scale)
	fails := emu.emu.CopyFailures()
	ends := availableAt(f, emu.trace, s.t0, scale, nil, fails)
	for id, at := range s.seenAt {
		if end, ok := ends[id]; ok {
			out.Lags = append(out.Lags, max(0, time.Duration(float64(at.Sub(s.t0))*scale)-end))
		}
	}
	for _, end := range ends {
		out.ECSDone = max(out.ECSDone, end)
	}
	out.FailedAttempts = acceptedFailures(emu.trace, fails)
	out.Regions = regionStats(f, emu.trace, f.lowerBound(), s.t0, scale, fails)
	if out.UrgentSeen {
		out.Urgent = time.Duration(float64(out.Urgent) * scale)
	}
	out.Calls = calls(emu.emu.Stats().Calls)
	return out, nil
}

// accepted counts the accepted CopyImage calls in the trace.
func (t *trace) accepted() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, as := range t.copies {
		n += len(as)
	}
	return n
}

// acceptedFailures counts the accepted copies in the trace that ECS ended
// CreateFailed.
func acceptedFailures(tr *trace, fails map[string]float64) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, as := range tr.copies {
		for _, a := range as {
			if _, ok := fails[a.image]; ok {
				n++
			}
		}
	}
	return n
}

// script is one run of the smart script.
type script struct {
	ctx  context.Context
	prov *aliyun.Provider
	p    scriptParams
	f    *fleet
	wall func(time.Duration) time.Duration
	t0   time.Time

	mu          sync.Mutex
	pending     map[string][]string      // region -> accepted copies not yet seen ended, oldest first
	copyOf      map[string]*scriptCopy   // copy image id -> the copy it makes
	deferred    map[string][]*scriptCopy // source -> copies refused for a copy conflict, to send later
	outstanding int                      // copies not yet seen to succeed or given up
	seenAt      map[string]time.Time     // copy image id -> seen Available
	last        time.Time                // the last copy seen to end
	urgentID    string
	urgentSent  time.Time
	out         peerRun
}

// scriptCopy is one copy the script makes, over its attempts.
type scriptCopy struct {
	t        copyTask
	attempts int
	urgent   bool
	// failedID is the failed first attempt, deleted before the second: it
	// holds the copy's name, and a second CopyImage of that name is refused.
	failedID string
}

// submit sends the copy's CopyImage (throttled calls again after a second;
// refusals for a copy conflict again after PollMin when later is set, else
// kept for when the source's copy ends) and adds it to its region's
// pending copies.
func (s *script) submit(c *scriptCopy, later bool) {
	conflictBackoff := time.Duration(0)
	if later {
		conflictBackoff = s.wall(s.p.PollMin)
	}
	id, err := copyRetrying(s.ctx, s.prov, c.t, s.wall(time.Second), conflictBackoff)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		c.attempts++
		s.out.Accepted++
		s.pending[c.t.region] = append(s.pending[c.t.region], id)
		s.copyOf[id] = c
		if c.urgent {
			s.urgentID = id
		}
	case cloud.CodeOf(err) == cloud.CodeImageCopyConflict && !later:
		s.deferred[c.t.im.ID] = append(s.deferred[c.t.im.ID], c)
	default:
		s.out.Refused[cloud.CodeOf(err)]++
		s.outstanding--
	}
}

// sendUrgent sends the urgent copy at UrgentAt (emulated, from t0).
func (s *script) sendUrgent(at time.Duration) error {
	select {
	case <-s.ctx.Done():
		return s.ctx.Err()
	case <-time.After(time.Until(s.t0.Add(s.wall(at)))):
	}
	s.mu.Lock()
	s.urgentSent = time.Now()
	s.mu.Unlock()
	s.submit(&scriptCopy{t: copyTask{*s.f.Urgent, s.f.Regions[0]}, urgent: true}, true)
	return nil
}

// seen records what one poll saw of a copy; for a copy that ended it
// returns the copies to send now: the failed copy's second attempt, or
// the next copy of its source held back by the copy-conflict rule.
func (s *script) seen(id, status string, at time.Time) []*scriptCopy {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.copyOf[id]
	if id == s.urgentID && status != cloud.StatusWaiting && !s.out.UrgentSeen {
		s.out.UrgentSeen, s.out.Urgent = true, at.Sub(s.urgentSent)
	}
	if status == cloud.StatusWaiting || status == cloud.StatusCreating {
		return nil
	}
	s.last = maxTime(s.last, at)
	var next []*scriptCopy
	switch {
	case status == cloud.StatusAvailable:
		s.out.Succeeded++
		s.seenAt[id] = at
		s.outstanding--
	case status == cloud.StatusCreateFailed && c != nil && c.attempts < 2:
		c.failedID = id
		next = append(next, c) // a second attempt; the source stays busy
	default:
		s.out.Failed++
		s.outstanding--
		if c != nil {
			s.out.GivenUp = append(s.out.GivenUp, fmt.Sprintf("%s %d GiB", c.t.region, c.t.im.SizeGiB))
		}
	}
	if len(next) == 0 && c != nil {
		if q := s.deferred[c.t.im.ID]; len(q) > 0 {
			next, s.deferred[c.t.im.ID] = append(next, q[0]), q[1:]
		}
	}
	return next
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// deleteFailed deletes a CreateFailed copy (again after a second while
// throttled); another error is left to the CopyImage that follows.
func (s *script) deleteFailed(region, id string) {
	for {
		err := s.prov.DeleteImage(s.ctx, region, id)
		if err == nil || cloud.ClassOf(err) != cloud.ClassThrottled {
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(s.wall(time.Second)):
		}
	}
}

// done reports whether every copy succeeded or was given up.
func (s *script) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outstanding <= 0
}

// copyRetrying sends one CopyImage, again after backoff while ECS answers
// with flow control, and again after conflictBackoff (if positive) while
// it refuses a copy conflict.
func copyRetrying(ctx context.Context, prov *aliyun.Provider, t copyTask, backoff, conflictBackoff time.Duration) (string, error) {
	for {
		id, err := prov.CopyImage(ctx, cloud.CopyRequest{SourceRegion: sourceRegion, SourceImageID: t.im.ID, DestinationRegion: t.region, Name: copyName(t)})
		wait := time.Duration(0)
		switch {
		case err == nil:
			return id, nil
		case cloud.ClassOf(err) == cloud.ClassThrottled:
			wait = backoff
		case cloud.CodeOf(err) == cloud.CodeImageCopyConflict && conflictBackoff > 0:
			wait = conflictBackoff
		default:
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

func copyName(t copyTask) string { return fmt.Sprintf("%s-%s", t.im.Name, t.region) }

// pollStatuses are every status a copy can be in: without them ECS shows
// only Available images.
var pollStatuses = []string{cloud.StatusWaiting, cloud.StatusCreating, cloud.StatusAvailable, cloud.StatusCreateFailed, cloud.StatusUnAvailable}

// pollRegion is the script's loop for one region: until every copy is
// done, wait, ask for the oldest ≤ Batch pending copies, act on each that
// ended (Available, or failed: CreateFailed, UnAvailable, or gone) and
// count the Waiting ones for the next wait. A region with nothing pending
// makes no call. A throttled or failed poll is tried again after PollMin.
func (s *script) pollRegion(region string) error {
	next := s.p.PollMin
	for !s.done() {
		select {
		case <-s.ctx.Done():
			return fmt.Errorf("script polling %s: copies still pending: %w", region, s.ctx.Err())
		case <-time.After(s.wall(next)):
		}
		s.mu.Lock()
		batch := slices.Clone(s.pending[region][:min(s.p.Batch, len(s.pending[region]))])
		s.mu.Unlock()
		next = s.p.PollMin
		if len(batch) == 0 {
			continue
		}
		ims, err := s.prov.DescribeImages(s.ctx, cloud.ImageQuery{Region: region, IDs: batch, Statuses: pollStatuses})
		if err != nil {
			if s.ctx.Err() != nil {
				return s.ctx.Err()
			}
			continue
		}
		at := time.Now()
		status := map[string]string{}
		for _, im := range ims {
			status[im.ID] = im.Status
		}
		waiting := 0
		ended := map[string]bool{}
		var resend []*scriptCopy
		for _, id := range batch {
			st := status[id]
			switch st {
			case cloud.StatusWaiting:
				waiting++
			case cloud.StatusCreating:
			case "":
				st = "gone"
				ended[id] = true
			default:
				ended[id] = true
			}
			resend = append(resend, s.seen(id, st, at)...)
		}
		s.mu.Lock()
		s.pending[region] = slices.DeleteFunc(s.pending[region], func(id string) bool { return ended[id] })
		s.mu.Unlock()
		for _, c := range resend {
			if c.failedID != "" {
				s.deleteFailed(region, c.failedID)
				c.failedID = ""
			}
			s.submit(c, true)
		}
		next = min(max(time.Duration(waiting)*s.p.PerWaiting, s.p.PollMin), s.p.PollMax)
	}
	return nil
}

// runPackerReal runs Packer's image_copy_regions as the plugin's code does
// (packer-plugin-alicloud, builder/ecs/step_region_copy_image.go at
// c9d1e19): one build per image, all started together; each sends
// CopyImage for each destination region, one after the other, with the
// SDK's client directly (no retry), and returns without waiting for the
// copies: it waits only for a same-region encrypted copy, which this fleet
// has none of. A CopyImage that fails halts the build, and the step's
// Cleanup then cancels the copies that build had started
// (CancelCopyImage). Packer never learns how its copies end: the makespan
// reported is ECS's queue's, replayed from the accepted copies.
func runPackerReal(ctx context.Context, o *options, f *fleet, scale float64) (peerRun, error) {
	emu, err := startEmulator(f, scale, o.throttle, int64(o.seed))
	if err != nil {
		return peerRun{}, err
	}
	defer emu.close()
	prov, err := newPeerProvider(emu, min(len(f.Images), 64))
	if err != nil {
		return peerRun{}, err
	}
	defer prov.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	out := peerRun{Copies: len(f.Images) * len(f.Regions), Refused: map[string]int{}, CompletionUnknown: true}
	var mu sync.Mutex
	cancelled := map[string]bool{}
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, im := range f.Images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			made := map[string]string{} // region -> copy
			for _, r := range f.Regions {
				id, err := prov.CopyImage(ctx, cloud.CopyRequest{SourceRegion: sourceRegion, SourceImageID: im.ID, DestinationRegion: r, Name: copyName(copyTask{im, r})})
				if err != nil {
					mu.Lock()
					out.Refused[cloud.CodeOf(err)]++
					mu.Unlock()
					// halt: Cleanup cancels this build's copies.
					for cr, cid := range made {
						if prov.CancelCopyImage(ctx, cr, cid) == nil {
							mu.Lock()
							cancelled[cid] = true
							mu.Unlock()
						}
					}
					return
				}
				made[r] = id
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return peerRun{}, err
	}
	fails := emu.emu.CopyFailures()
	ends := availableAt(f, emu.trace, t0, scale, cancelled, fails)
	out.Accepted = emu.trace.accepted()
	out.FailedAttempts = acceptedFailures(emu.trace, fails)
	out.Cancelled = len(cancelled)
	for _, end := range ends {
		out.ECSDone = max(out.ECSDone, end)
	}
	out.Makespan = out.ECSDone
	out.Calls = calls(emu.emu.Stats().Calls)
	return out, nil
}

// availableAt returns when each copy (by destination image id) became
// Available, emulated from t0, replayed from the trace (replay); copies in
// skip (cancelled) and copies that ended CreateFailed are left out.
func availableAt(f *fleet, tr *trace, t0 time.Time, scale float64, skip map[string]bool, fails map[string]float64) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, cs := range replay(f, tr, t0, scale, skip, fails) {
		for _, c := range cs {
			if !c.failed {
				out[c.image] = c.end
			}
		}
	}
	return out
}

// replayedCopy is one accepted copy as ECS ran it, emulated from t0.
type replayedCopy struct {
	image, source  string
	at, start, end time.Duration
	failed         bool
}

// replay replays ECS's first-come-first-served slots of each region from
// the accepted copies in the trace, as the emulator times them: a copy
// listed in fails (Emulator.CopyFailures) ends CreateFailed after that
// share of its duration. Copies in skip (cancelled) are left out. The
// emulator's admin view shows an image's status but not when it changed,
// and a client may delete a failed copy, so the replay stands in for it.
func replay(f *fleet, tr *trace, t0 time.Time, scale float64, skip map[string]bool, fails map[string]float64) map[string][]replayedCopy {
	size := f.sizes()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string][]replayedCopy{}
	for _, r := range f.Regions {
		free := make([]time.Duration, f.Slots)
		for _, a := range tr.copies[r] {
			if skip[a.image] {
				continue
			}
			at := time.Duration(float64(a.at.Sub(t0)) * scale)
			first := 0
			for i := range free {
				if free[i] < free[first] {
					first = i
				}
			}
			start := max(at, free[first])
			d := f.duration(size[a.source])
			share, failed := fails[a.image]
			if failed {
				d = time.Duration(float64(d) * share)
			}
			free[first] = start + d
			out[r] = append(out[r], replayedCopy{image: a.image, source: a.source, at: at, start: start, end: start + d, failed: failed})
		}
	}
	return out
}

// percentile is the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
