package scheduler

import (
	"container/heap"
	"sort"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/job"
)

// forecast is what a region's copies at ECS will do if nothing else is
// submitted: ECS runs `slots` copies and starts the ones it holds Waiting
// first come, first served (in the order it accepted them) as slots free.
// Replaying that order from each running copy's time left (ECS's
// RemainTime, or the observed rate) and each waiting copy's estimated
// duration tells when every copy ends and when the first slot goes idle.
type forecast struct {
	now   time.Time
	ends  []time.Time // every copy's expected end, ascending
	dry   time.Time   // when a slot first goes idle with nothing waiting (now: one is idle)
	queue []queued    // the copies ECS holds Waiting, in ECS's order, with their expected starts
	busy  bool        // any copy is in ECS
	inECS int         // how many: running and waiting
	// queued counts the region's jobs QUEUED here, still to submit.
	queued int
}

// queued is one copy waiting at ECS and when it is expected to start.
type queued struct {
	j      *job.Job
	start  time.Time
	urgent bool // admitted ahead of the look-ahead (Scheduler.urgent)
}

// regionForecast replays the region's copies in ECS (the live view), plus
// extra jobs about to be submitted (in that order, after the others).
func (s *Scheduler) regionForecast(region string, now time.Time, extra ...*job.Job) forecast {
	slots := s.opts.slots(region)
	var running []time.Time
	var waiting []*job.Job
	queuedHere := 0
	urgent := map[string]bool{}
	wins := map[string]endWindow{}
	s.mu.Lock()
	for id := range s.urgent {
		urgent[id] = true
	}
	for _, j := range s.live {
		if j.DestinationRegion != region {
			continue
		}
		switch {
		case j.State == job.StateCopying && j.CloudStatus == cloud.StatusAvailable:
			// ECS is done with it (post-copy actions left): no slot.
		case j.State == job.StateCopying || j.State == job.StateCancelling && j.CloudStatus == cloud.StatusCreating:
			running = append(running, s.expectedEndLocked(j, now))
		case j.State == job.StateSubmitting || j.State == job.StateWaiting:
			waiting = append(waiting, j)
			if w, ok := s.endWin[j.ID]; ok {
				wins[j.ID] = w
			}
		case j.State == job.StateQueued:
			queuedHere++
		}
	}
	s.mu.Unlock()
	sort.Slice(waiting, func(a, b int) bool {
		if !waiting[a].SubmitTime.Equal(waiting[b].SubmitTime) {
			return waiting[a].SubmitTime.Before(waiting[b].SubmitTime)
		}
		return waiting[a].ID < waiting[b].ID
	})
	waiting = append(waiting, extra...)

	f := forecast{now: now, busy: len(running)+len(waiting) > 0, inECS: len(running) + len(waiting), queued: queuedHere}
	free := make(timeHeap, 0, slots+len(running))
	for _, end := range running {
		free = append(free, end)
		f.ends = append(f.ends, end)
	}
	for len(free) < slots {
		free = append(free, now)
	}
	heap.Init(&free)
	// More copies running than slots (a quota lowered under us): the
	// earliest ends free the slots the waiting ones take.
	for len(free) > slots {
		heap.Pop(&free)
	}
	for _, j := range waiting {
		start := heap.Pop(&free).(time.Time)
		if start.Before(now) {
			start = now
		}
		end := start.Add(s.est.duration(j))
		if w, ok := wins[j.ID]; ok && j.CloudStatus == cloud.StatusWaiting {
			// ECS says when it plans to finish it, within a window; the
			// replay places the end in it.
			end = maxTime(minTime(maxTime(end, w.lo), w.hi), start)
		}
		f.queue = append(f.queue, queued{j, start, urgent[j.ID]})
		f.ends = append(f.ends, end)
		heap.Push(&free, end)
	}
	f.dry = free[0]
	sort.Slice(f.ends, func(a, b int) bool { return f.ends[a].Before(f.ends[b]) })
	return f
}

// expectedEndLocked is when a running copy is expected to end: from the
// time left ECS last reported (counted from when it said so), else from
// its start and the route's learned copy time. A copy already past that
// is expected after half as long again as it has overrun (at least
// PollMin): the polls that look for it back off geometrically, so a copy
// stuck at 99% costs a few calls, not one every PollMin. s.mu is held.
func (s *Scheduler) expectedEndLocked(j *job.Job, now time.Time) time.Time {
	var end time.Time
	switch {
	case j.Remaining > 0 && !j.ProgressTime.IsZero():
		end = j.ProgressTime.Add(j.Remaining)
	case j.Remaining > 0:
		end = j.UpdateTime.Add(j.Remaining)
	default:
		start, ok := s.started[j.ID]
		if !ok {
			start = now
		}
		end = start.Add(s.est.duration(j))
	}
	if !end.After(now) {
		end = now.Add(max(s.opts.PollMin, now.Sub(end)/2))
	}
	return end
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(a, b int) bool { return h[a].Before(h[b]) }
func (h timeHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
