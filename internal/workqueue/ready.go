package workqueue

import "container/heap"

// readyQueue holds the keys that are dirty and not processing, in the order
// Get hands them out.
type readyQueue[K comparable] interface {
	push(k K)
	pop() K
	len() int
	// fix restores k's place after its priority changed; k is in the queue.
	fix(k K)
}

// fifo is the default order: a slice consumed from head, reused once
// drained and compacted when the consumed prefix dominates, so a queue that
// keeps emptying does not allocate per Add.
type fifo[K comparable] struct {
	items []K
	head  int
}

func (q *fifo[K]) push(k K) { q.items = append(q.items, k) }
func (q *fifo[K]) len() int { return len(q.items) - q.head }
func (q *fifo[K]) fix(K)    {}

func (q *fifo[K]) pop() K {
	k := q.items[q.head]
	var zero K
	q.items[q.head] = zero // drop the reference for the GC
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 1024 && 2*q.head >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return k
}

// prio is a heap ordered by less, ties broken by insertion sequence so equal
// priorities stay FIFO.
type prio[K comparable] struct {
	less  func(a, b K) bool
	items []prioItem[K]
	index map[K]int
	seq   uint64
}

type prioItem[K comparable] struct {
	key K
	seq uint64
}

func newPrio[K comparable](less func(a, b K) bool) *prio[K] {
	return &prio[K]{less: less, index: make(map[K]int)}
}

func (q *prio[K]) push(k K) {
	q.seq++
	heap.Push((*prioHeap[K])(q), prioItem[K]{key: k, seq: q.seq})
}

func (q *prio[K]) pop() K { return heap.Pop((*prioHeap[K])(q)).(prioItem[K]).key }
func (q *prio[K]) len() int {
	return len(q.items)
}

func (q *prio[K]) fix(k K) {
	if i, ok := q.index[k]; ok {
		heap.Fix((*prioHeap[K])(q), i)
	}
}

// prioHeap is prio seen as a heap.Interface; the methods live on a separate
// type so that prio's own push/pop keep their readyQueue meaning.
type prioHeap[K comparable] prio[K]

func (h *prioHeap[K]) Len() int { return len(h.items) }

func (h *prioHeap[K]) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if h.less(a.key, b.key) {
		return true
	}
	if h.less(b.key, a.key) {
		return false
	}
	return a.seq < b.seq
}

func (h *prioHeap[K]) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].key] = i
	h.index[h.items[j].key] = j
}

func (h *prioHeap[K]) Push(x any) {
	it := x.(prioItem[K])
	h.index[it.key] = len(h.items)
	h.items = append(h.items, it)
}

func (h *prioHeap[K]) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = prioItem[K]{}
	h.items = h.items[:n]
	delete(h.index, it.key)
	return it
}
