package ecsemu

import (
	"math/rand"
	"testing"
	"time"
)

// TestQueueIncrementalMatchesReplay drives a queue with random arrivals and
// cancellations and checks, after every step, that the incremental schedule
// (add's fast path, pruning) equals a replay of every task from scratch,
// and that no task's past changed.
func TestQueueIncrementalMatchesReplay(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 50; round++ {
		slots := 1 + rng.Intn(4)
		q := newRegionQueue(slots)
		var all []*copyTask
		now := time.Unix(0, 0)
		type past struct{ start, end time.Time }
		started := map[*copyTask]time.Time{} // tasks seen Creating or done, and their start
		for step := 0; step < 60; step++ {
			now = now.Add(time.Duration(rng.Intn(40)) * time.Second)
			if rng.Intn(3) > 0 || len(all) == 0 {
				task := &copyTask{arrival: now, duration: time.Duration(1+rng.Intn(100)) * time.Second}
				if rng.Intn(5) == 0 {
					task.failAt = 0.5
				}
				all = append(all, task)
				q.add(task, now)
			} else {
				// Cancel a random task that is still Waiting or Creating.
				task := all[rng.Intn(len(all))]
				if task.cancelled || !task.end.After(now) {
					continue
				}
				task.cancelled, task.cancelAt = true, now
				q.reschedule(now)
			}
			// Snapshot, replay from scratch, compare.
			before := make([]past, len(all))
			for i, task := range all {
				before[i] = past{task.start, task.end}
			}
			replay := &regionQueue{base: make([]time.Time, slots), tasks: append([]*copyTask(nil), all...)}
			replay.reschedule(time.Unix(0, 0)) // nothing ended before the epoch: no pruning
			for i, task := range all {
				if task.start != before[i].start || task.end != before[i].end {
					t.Fatalf("round %d step %d task %d: incremental %v–%v, replay %v–%v",
						round, step, i, before[i].start, before[i].end, task.start, task.end)
				}
			}
			// A start already in the past never moves.
			for task, start := range started {
				if task.start != start {
					t.Fatalf("round %d step %d: a started task moved from %v to %v", round, step, start, task.start)
				}
			}
			for _, task := range all {
				if !task.skipped && !task.start.After(now) {
					started[task] = task.start
				}
			}
			// At most `slots` tasks are Creating at any time.
			creating := 0
			for _, task := range all {
				if !task.skipped && task.status(now) == "Creating" {
					creating++
				}
			}
			if creating > slots {
				t.Fatalf("%d Creating with %d slots", creating, slots)
			}
		}
	}
}
