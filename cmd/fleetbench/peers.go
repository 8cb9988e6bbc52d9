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
	// Copies the peer set out to make; Accepted by ECS; of those,
	// Succeeded and Failed as the peer saw them, Cancelled by the peer.
	Copies, Accepted, Succeeded, Failed, Cancelled int
	// Refused CopyImage calls (not retried), by code.
	Refused map[string]int
	// CompletionUnknown: the peer never learns whether its copies ended.
	CompletionUnknown bool
	// Lags: Available in ECS to seen by the peer, per copy it saw succeed.
	Lags  []time.Duration
	Calls calls
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

// byLargest is the fleet's copies, largest first (then fleet order).
func byLargest(f *fleet) []copyTask {
	ts := tasksOf(f)
	sort.SliceStable(ts, func(a, b int) bool { return ts[a].im.SizeGiB > ts[b].im.SizeGiB })
	return ts
}

// runScript runs the smart script on a fresh emulator: it submits every
// copy at once, largest first (ECS queues what its slots cannot take yet
// as Waiting; a throttled CopyImage is retried), then polls each region
// with one DescribeImages for its oldest ≤ Batch pending copies, the next
// poll clamp(W × PerWaiting, PollMin, PollMax) later.
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
	wall := func(d time.Duration) time.Duration { return scaled(d, scale) }

	tasks := byLargest(f)
	out := peerRun{Copies: len(tasks), Refused: map[string]int{}}
	t0 := time.Now()
	type pending struct {
		id    string
		order int
	}
	var mu sync.Mutex
	queue := map[string][]pending{} // region -> accepted copies, in submit order
	work := make(chan int)
	var wg sync.WaitGroup
	for range p.Submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t := tasks[i]
				id, err := copyRetrying(ctx, prov, t, wall(time.Second))
				mu.Lock()
				if err != nil {
					out.Refused[cloud.CodeOf(err)]++
				} else {
					queue[t.region] = append(queue[t.region], pending{id, i})
				}
				mu.Unlock()
			}
		}()
	}
	for i := range tasks {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return peerRun{}, err
	}

	seenAt := map[string]time.Time{} // destination image -> seen Available
	var last time.Time
	errs := make(chan error, len(f.Regions))
	for _, r := range f.Regions {
		q := queue[r]
		sort.Slice(q, func(a, b int) bool { return q[a].order < q[b].order })
		ids := make([]string, len(q))
		for i, c := range q {
			ids[i] = c.id
		}
		out.Accepted += len(ids)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pollRegion(ctx, prov, r, ids, p, wall, func(id, status string, at time.Time) {
				mu.Lock()
				defer mu.Unlock()
				if status == cloud.StatusAvailable {
					out.Succeeded++
					seenAt[id] = at
				} else {
					out.Failed++
				}
				if at.After(last) {
					last = at
				}
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return peerRun{}, err
		}
	}
	out.Makespan = time.Duration(float64(last.Sub(t0)) * scale)
	ends := availableAt(f, emu.trace, t0, scale, nil)
	for id, at := range seenAt {
		if end, ok := ends[id]; ok {
			out.Lags = append(out.Lags, max(0, time.Duration(float64(at.Sub(t0))*scale)-end))
		}
	}
	for _, end := range ends {
		out.ECSDone = max(out.ECSDone, end)
	}
	out.Calls = calls(emu.emu.Stats().Calls)
	return out, nil
}

// copyRetrying sends one CopyImage, again after backoff while ECS answers
// with flow control.
func copyRetrying(ctx context.Context, prov *aliyun.Provider, t copyTask, backoff time.Duration) (string, error) {
	for {
		id, err := prov.CopyImage(ctx, cloud.CopyRequest{SourceRegion: sourceRegion, SourceImageID: t.im.ID, DestinationRegion: t.region, Name: copyName(t)})
		if err == nil || cloud.ClassOf(err) != cloud.ClassThrottled {
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(backoff):
		}
	}
}

func copyName(t copyTask) string { return fmt.Sprintf("%s-%s", t.im.Name, t.region) }

// pollStatuses are every status a copy can be in: without them ECS shows
// only Available images.
var pollStatuses = []string{cloud.StatusWaiting, cloud.StatusCreating, cloud.StatusAvailable, cloud.StatusCreateFailed, cloud.StatusUnAvailable}

// pollRegion is the script's loop for one region: until no copy is
// pending, wait, ask for the oldest ≤ Batch pending copies, report each
// that ended (Available, or failed: CreateFailed, UnAvailable, or gone)
// and count the Waiting ones for the next wait. A throttled or failed poll
// is tried again after PollMin.
func pollRegion(ctx context.Context, prov *aliyun.Provider, region string, ids []string, p scriptParams, wall func(time.Duration) time.Duration, ended func(id, status string, at time.Time)) error {
	next := p.PollMin
	for len(ids) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("script polling %s: %d copies still pending: %w", region, len(ids), ctx.Err())
		case <-time.After(wall(next)):
		}
		batch := ids[:min(p.Batch, len(ids))]
		ims, err := prov.DescribeImages(ctx, cloud.ImageQuery{Region: region, IDs: batch, Statuses: pollStatuses})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			next = p.PollMin
			continue
		}
		at := time.Now()
		status := map[string]string{}
		for _, im := range ims {
			status[im.ID] = im.Status
		}
		waiting := 0
		done := map[string]bool{}
		for _, id := range batch {
			switch s := status[id]; s {
			case cloud.StatusWaiting:
				waiting++
			case cloud.StatusCreating:
			case "":
				ended(id, "gone", at)
				done[id] = true
			default:
				ended(id, s, at)
				done[id] = true
			}
		}
		ids = slices.DeleteFunc(ids, func(id string) bool { return done[id] })
		next = min(max(time.Duration(waiting)*p.PerWaiting, p.PollMin), p.PollMax)
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
	ends := availableAt(f, emu.trace, t0, scale, cancelled)
	out.Accepted = len(ends) + len(cancelled)
	out.Cancelled = len(cancelled)
	for _, end := range ends {
		out.ECSDone = max(out.ECSDone, end)
	}
	out.Makespan = out.ECSDone
	out.Calls = calls(emu.emu.Stats().Calls)
	return out, nil
}

// availableAt replays ECS's first-come-first-served slots of each region
// from the accepted copies in the trace, as the emulator times them, and
// returns when each copy (by destination image id) became Available,
// emulated, from t0; copies in skip (cancelled) are left out. The
// emulator's admin view shows an image's status but not when it changed,
// so the replay stands in for it.
func availableAt(f *fleet, tr *trace, t0 time.Time, scale float64, skip map[string]bool) map[string]time.Duration {
	size := map[string]int64{}
	for _, im := range f.Images {
		size[im.ID] = im.SizeGiB
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]time.Duration{}
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
			free[first] = start + f.duration(size[a.source])
			out[a.image] = free[first]
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
