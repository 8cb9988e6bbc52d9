// Package workqueue is the scheduler's queue of keys to reconcile, with the
// semantics of client-go's util/workqueue, made generic and clock-injectable.
//
// The queue is
//   - stingy: adding a key that is already waiting to be processed is a no-op,
//     so a burst of events for one image costs one pass;
//   - never concurrent per key: a key handed out by Get is not handed out again
//     until Done, and a key added meanwhile is marked dirty and queued again at
//     Done ("run again afterwards", never "run in parallel");
//   - fair: FIFO. The scheduler orders copies itself (ad-hoc first, then
//     priority, fair shares, longest first) when it admits them to a region,
//     so the queue needs no priorities.
//
// Its core is client-go's three structures under one mutex and sync.Cond:
// the ready queue (every key in it is dirty and not processing), the dirty set
// and the processing set.
//
// Delayed adds (AddAfter, AddRateLimited) sit in a min-heap ordered by ready
// time. One goroutine per queue waits on the injected clock for the earliest
// entry and is woken when an earlier one arrives; it never polls, so a test
// drives it by stepping a clock.Fake. A key already waiting keeps the earlier
// of its two ready times. AddRateLimited delays a key by its per-key
// exponential Backoff; Forget resets that history and must be called when a
// key succeeds (Run does it).
//
// Run is the worker loop: bounded workers, Get → fn → Done, an error requeues
// with backoff, success forgets, and a panic is recovered, reported and
// requeued with backoff so one bad key cannot take the daemon down.
package workqueue
