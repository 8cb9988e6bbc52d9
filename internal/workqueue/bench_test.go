package workqueue

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkQueueAddGetDone measures one Add → Get → Done cycle with every
// goroutine of RunParallel producing and consuming distinct keys.
func BenchmarkQueueAddGetDone(b *testing.B) {
	for _, name := range []string{"fifo"} {
		b.Run(name, func(b *testing.B) {
			q := New(Options[uint64]{})
			defer q.ShutDown()
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// Each goroutine adds before it gets, so a Get always
					// finds a key and never blocks forever.
					q.Add(next.Add(1))
					k, _ := q.Get()
					q.Done(k)
				}
			})
		})
	}
}

// BenchmarkQueueAddAfter measures scheduling into the delay heap (keys never
// come due during the benchmark).
func BenchmarkQueueAddAfter(b *testing.B) {
	q := New(Options[int]{})
	defer q.ShutDown()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q.AddAfter(i, time.Hour+time.Duration(i%1000)*time.Millisecond)
		i++
	}
}
