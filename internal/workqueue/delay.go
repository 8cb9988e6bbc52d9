package workqueue

import (
	"container/heap"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
)

// AddAfter adds k once d has passed on the queue's clock. If k is already
// waiting, the earlier of the two times wins. d <= 0 is Add. A waiting key
// is independent of the ready and processing sets: adding k now does not
// cancel its delayed add, as in client-go, so a pass the caller scheduled
// still happens. Ignored after ShutDown.
func (q *Queue[K]) AddAfter(k K, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addAfterLocked(k, d)
}

func (q *Queue[K]) addAfterLocked(k K, d time.Duration) {
	if q.shutdown {
		return
	}
	if d <= 0 {
		q.addLocked(k)
		return
	}
	at := q.clock.Now().Add(d)
	if !q.waiting.schedule(k, at) {
		return
	}
	if q.waiting.items[0].key == k {
		// The earliest time moved up: the loop must re-arm its timer.
		select {
		case q.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// AddRateLimited adds k after its next Backoff delay and counts the failure.
func (q *Queue[K]) AddRateLimited(k K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	n := q.failures[k]
	q.failures[k] = n + 1
	q.addAfterLocked(k, q.backoff.When(n))
}

// Forget clears k's failure history, so its next AddRateLimited waits Base.
// Call it when k was processed successfully.
func (q *Queue[K]) Forget(k K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, k)
}

// NumRequeues returns how many times k was AddRateLimited since its last
// Forget.
func (q *Queue[K]) NumRequeues(k K) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[k]
}

// NextReady returns when the earliest delayed key becomes ready, and false
// if none is waiting. A time not after Now means the delay goroutine is about
// to release it; tests use this to tell an idle queue from a busy one.
func (q *Queue[K]) NextReady() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting.items) == 0 {
		return time.Time{}, false
	}
	return q.waiting.items[0].at, true
}

// waitLoop releases delayed keys when they are due. It sleeps on one timer
// for the earliest entry, armed at an absolute instant so a fake clock stepped
// meanwhile cannot make it late, and is woken through q.wake when an earlier
// entry arrives. With nothing waiting it holds no timer at all.
func (q *Queue[K]) waitLoop() {
	defer close(q.stopped)
	for {
		q.mu.Lock()
		now := q.clock.Now()
		for len(q.waiting.items) > 0 && !q.waiting.items[0].at.After(now) {
			q.addLocked(q.waiting.popEarliest())
		}
		var next time.Time
		if len(q.waiting.items) > 0 {
			next = q.waiting.items[0].at
		}
		q.mu.Unlock()

		if next.IsZero() {
			select {
			case <-q.wake:
			case <-q.stop:
				return
			}
			continue
		}
		t := clock.NewTimerAt(q.clock, next)
		select {
		case <-t.C():
		case <-q.wake:
			t.Stop()
		case <-q.stop:
			t.Stop()
			return
		}
	}
}

// waitHeap is a min-heap of delayed keys by ready time, ties in insertion
// order, with an index so a key appears at most once.
type waitHeap[K comparable] struct {
	items []waitItem[K]
	index map[K]int
	seq   uint64
}

type waitItem[K comparable] struct {
	key K
	at  time.Time
	seq uint64
}

// schedule makes k due at at, unless it is already due earlier; it reports
// whether anything changed.
func (h *waitHeap[K]) schedule(k K, at time.Time) bool {
	if i, ok := h.index[k]; ok {
		if !at.Before(h.items[i].at) {
			return false
		}
		h.items[i].at = at
		heap.Fix(h, i)
		return true
	}
	h.seq++
	heap.Push(h, waitItem[K]{key: k, at: at, seq: h.seq})
	return true
}

func (h *waitHeap[K]) popEarliest() K { return heap.Pop(h).(waitItem[K]).key }

func (h *waitHeap[K]) Len() int { return len(h.items) }

func (h *waitHeap[K]) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}

func (h *waitHeap[K]) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].key] = i
	h.index[h.items[j].key] = j
}

func (h *waitHeap[K]) Push(x any) {
	it := x.(waitItem[K])
	h.index[it.key] = len(h.items)
	h.items = append(h.items, it)
}

func (h *waitHeap[K]) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = waitItem[K]{}
	h.items = h.items[:n]
	delete(h.index, it.key)
	return it
}
