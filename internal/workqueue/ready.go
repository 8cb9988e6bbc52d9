package workqueue

// fifo is the ready queue, the keys that are dirty and not processing in
// the order Get hands them out: a slice consumed from head, reused once
// drained and compacted when the consumed prefix dominates, so a queue that
// keeps emptying does not allocate per Add.
type fifo[K comparable] struct {
	items []K
	head  int
}

func (q *fifo[K]) push(k K) { q.items = append(q.items, k) }
func (q *fifo[K]) len() int { return len(q.items) - q.head }

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
