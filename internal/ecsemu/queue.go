package ecsemu

import (
	"slices"
	"time"
)

// copyTask is one CopyImage into a destination region. Its duration and
// fate are fixed at submit; its start and end come from the region queue.
type copyTask struct {
	img          *image
	sourceRegion string
	sourceID     string
	arrival      time.Time
	startup      time.Duration // scaled start-up part of duration
	duration     time.Duration // scaled total, start-up included
	// failAt is 0 for a copy that succeeds, else the share of duration
	// after which it ends CreateFailed.
	failAt    float64
	cancelled bool
	cancelAt  time.Time

	// Computed by regionQueue.reschedule. A skipped task was cancelled
	// while Waiting and never held a slot.
	skipped    bool
	start, end time.Time
}

// status is the ECS status of the copy at now.
func (t *copyTask) status(now time.Time) string {
	switch {
	case now.Before(t.start):
		return "Waiting"
	case now.Before(t.end):
		return "Creating"
	case t.failAt > 0:
		return "CreateFailed"
	default:
		return "Available"
	}
}

// progress is the percentage done and the estimated time left at now. The
// start-up phase shows 0%; a copy never shows 100% before it is Available.
func (t *copyTask) progress(now time.Time) (pct int, remain time.Duration) {
	plannedEnd := t.start.Add(t.duration)
	switch t.status(now) {
	case "Waiting":
		return 0, plannedEnd.Sub(now)
	case "Available":
		return 100, 0
	}
	at := now
	if t.end.Before(at) {
		at = t.end // CreateFailed: progress froze at failure
	}
	elapsed := at.Sub(t.start) - t.startup
	if transfer := t.duration - t.startup; elapsed > 0 && transfer > 0 {
		pct = int(float64(elapsed) / float64(transfer) * 100)
	}
	pct = min(max(pct, 0), 99)
	if t.status(now) == "Creating" {
		remain = plannedEnd.Sub(now)
	}
	return pct, remain
}

// regionQueue holds the copies into one region in arrival order.
type regionQueue struct {
	// base is when each slot frees, after the tasks already pruned.
	base  []time.Time
	tasks []*copyTask
	// tail is when each slot frees after every task; it lets add place a
	// new task without replaying the queue.
	tail []time.Time
}

func newRegionQueue(slots int) *regionQueue {
	return &regionQueue{base: make([]time.Time, slots), tail: make([]time.Time, slots)}
}

// add appends a task that arrives now. Placing it only needs the slots'
// free times after the tasks ahead of it; the whole queue is replayed only
// when its head has ended, to prune it.
func (q *regionQueue) add(t *copyTask, now time.Time) {
	q.tasks = append(q.tasks, t)
	if len(q.tasks) > 1 && !q.tasks[0].end.After(now) {
		q.reschedule(now)
		return
	}
	place(t, q.tail)
}

// place schedules t first come, first served: it takes the slot that frees
// first, and updates free.
func place(t *copyTask, free []time.Time) {
	slot := 0
	for j := range free {
		if free[j].Before(free[slot]) {
			slot = j
		}
	}
	start := t.arrival
	if free[slot].After(start) {
		start = free[slot]
	}
	if t.cancelled && t.cancelAt.Before(start) {
		t.skipped, t.start, t.end = true, t.cancelAt, t.cancelAt
		return
	}
	end := start.Add(t.duration)
	if t.failAt > 0 {
		end = start.Add(time.Duration(float64(t.duration) * t.failAt))
	}
	if t.cancelled && t.cancelAt.Before(end) {
		end = t.cancelAt
	}
	t.skipped, t.start, t.end = false, start, end
	free[slot] = end
}

// reschedule recomputes start and end of every task. It is called when a
// task is cancelled (which frees its slot early). Tasks that ended by now
// at the head of the queue are folded into base so the queue stays short.
func (q *regionQueue) reschedule(now time.Time) {
	free := slices.Clone(q.base)
	pruned, pruning := 0, true
	var prunedBase []time.Time
	for i, t := range q.tasks {
		place(t, free)
		if pruning && !t.end.After(now) {
			pruned, prunedBase = i+1, slices.Clone(free)
		} else {
			pruning = false
		}
	}
	q.tail = free
	if pruned > 0 {
		q.tasks = slices.Clone(q.tasks[pruned:])
		q.base = prunedBase
	}
}

// copying reports whether any task copies the source image at now.
func (q *regionQueue) copying(sourceID string, now time.Time) bool {
	for _, t := range q.tasks {
		if t.sourceID == sourceID && !t.cancelled && t.end.After(now) {
			return true
		}
	}
	return false
}
