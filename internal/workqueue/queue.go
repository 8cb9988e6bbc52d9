package workqueue

import (
	"context"
	"sync"

	"github.com/replicatord/replicatord/internal/clock"
)

// Options configures a Queue. The zero value is a FIFO queue on the wall
// clock with DefaultBackoff.
type Options[K comparable] struct {
	// Clock drives AddAfter and backoff; nil is clock.Real.
	Clock clock.Clock
	// Name identifies the queue in metrics and logs.
	Name string
	// Backoff is the per-key delay of AddRateLimited. A zero Backoff is
	// DefaultBackoff; a non-positive Base or Max takes its default, Max is
	// raised to Base, Jitter is clamped to [0, 1].
	Backoff Backoff
}

// Queue is a work queue of keys of type K; see the package doc. It is safe
// for concurrent use. Call ShutDown when done with it: it owns a goroutine.
type Queue[K comparable] struct {
	clock   clock.Clock
	name    string
	backoff Backoff

	mu         sync.Mutex
	cond       *sync.Cond // signalled when ready gains a key or on shutdown
	ready      fifo[K]
	dirty      map[K]struct{}
	processing map[K]struct{}
	failures   map[K]int
	shutdown   bool
	idle       chan struct{} // closed when nothing is ready or processing; see ShutDownWithDrain

	waiting waitHeap[K] // delayed adds, guarded by mu
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

// New returns a running queue. It starts the goroutine that releases delayed
// keys; ShutDown stops it.
func New[K comparable](opts Options[K]) *Queue[K] {
	q := &Queue[K]{
		clock:      opts.Clock,
		name:       opts.Name,
		backoff:    opts.Backoff.normalized(),
		dirty:      make(map[K]struct{}),
		processing: make(map[K]struct{}),
		failures:   make(map[K]int),
		waiting:    waitHeap[K]{index: make(map[K]int)},
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if q.clock == nil {
		q.clock = clock.Real{}
	}
	q.cond = sync.NewCond(&q.mu)
	go q.waitLoop()
	return q
}

// Name returns Options.Name.
func (q *Queue[K]) Name() string { return q.name }

// Add marks k as needing processing. Adding a key that is already ready is a
// no-op; adding a key that is
// being processed queues it again for after Done. Ignored after ShutDown.
func (q *Queue[K]) Add(k K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(k)
}

func (q *Queue[K]) addLocked(k K) {
	if q.shutdown {
		return
	}
	_, processing := q.processing[k]
	if _, dirty := q.dirty[k]; dirty {
		return
	}
	q.dirty[k] = struct{}{}
	if processing {
		return // Done queues it
	}
	q.ready.push(k)
	q.cond.Signal()
}

// Get blocks until a key is ready and hands it out; the caller must call Done
// with it. After ShutDown, Get still hands out the keys that were ready, then
// returns shutdown == true.
func (q *Queue[K]) Get() (k K, shutdown bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.ready.len() == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.ready.len() == 0 {
		return k, true
	}
	k = q.ready.pop()
	q.processing[k] = struct{}{}
	delete(q.dirty, k)
	return k, false
}

// Done ends the processing of k. If k was added meanwhile, it becomes ready
// again now. Done of a key that is not being processed is a no-op.
func (q *Queue[K]) Done(k K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.processing[k]; !ok {
		return
	}
	delete(q.processing, k)
	if _, dirty := q.dirty[k]; dirty {
		q.ready.push(k)
		q.cond.Signal()
	}
	if q.idle != nil && q.idleLocked() {
		close(q.idle)
		q.idle = nil
	}
}

// idleLocked reports that workers have nothing left: no key is processing
// and none is ready.
func (q *Queue[K]) idleLocked() bool { return len(q.processing) == 0 && q.ready.len() == 0 }

// Len returns how many keys are ready (not waiting, not processing).
func (q *Queue[K]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready.len()
}

// Stats is a snapshot of the queue's sizes, for metrics.
type Stats struct {
	Ready      int // handed out by the next Get calls
	Waiting    int // delayed by AddAfter or AddRateLimited
	Processing int // handed out and not yet Done
}

// Stats returns the current sizes.
func (q *Queue[K]) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Ready: q.ready.len(), Waiting: len(q.waiting.items), Processing: len(q.processing)}
}

// ShuttingDown reports whether ShutDown was called.
func (q *Queue[K]) ShuttingDown() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.shutdown
}

// ShutDown stops intake: later adds are ignored and delayed keys are dropped.
// Get callers wake up, take what is still ready, then see shutdown. It
// returns once the delay goroutine has exited and is safe to call twice.
func (q *Queue[K]) ShutDown() {
	q.mu.Lock()
	if !q.shutdown {
		q.shutdown = true
		q.waiting.items, q.waiting.index = nil, make(map[K]int)
		close(q.stop)
		q.cond.Broadcast()
	}
	q.mu.Unlock()
	<-q.stopped
}

// ShutDownWithDrain shuts the queue down, then waits until the workers have
// nothing left: every key handed out is Done and none is ready (a key re-added
// while processing is handed out once more). If ctx ends first it returns
// ctx's error. The daemon gives it its shutdown deadline: reconciliation is
// level-based, so work cut off here is picked up again at the next start.
func (q *Queue[K]) ShutDownWithDrain(ctx context.Context) error {
	q.ShutDown()
	q.mu.Lock()
	if q.idleLocked() {
		q.mu.Unlock()
		return nil
	}
	if q.idle == nil {
		q.idle = make(chan struct{})
	}
	idle := q.idle
	q.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
