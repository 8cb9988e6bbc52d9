package workqueue

import (
	"context"
	"sync"
)

// Run processes q with `workers` goroutines (at least one) until q is shut
// down and drained, then returns once every worker has exited. Each worker
// loops Get → fn → Done:
//   - fn returns nil: Forget, the key's backoff starts over;
//   - fn returns an error: AddRateLimited, the key comes back after its backoff;
//   - fn panics: the panic is recovered, passed to onPanic (if not nil) and the
//     key is requeued with backoff, like an error.
//
// fn gets ctx; when ctx ends Run shuts q down, and keys still ready are
// marked Done without calling fn, so Run returns promptly. Keys that fn
// dropped this way are not lost in replicatord: reconciliation re-lists
// every non-terminal job at start.
func Run[K comparable](ctx context.Context, q *Queue[K], workers int, fn func(context.Context, K) error, onPanic func(K, any)) {
	if workers < 1 {
		workers = 1
	}
	exited := make(chan struct{})
	defer close(exited)
	go func() {
		select {
		case <-ctx.Done():
			q.ShutDown()
		case <-exited:
		}
	}()

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				k, shutdown := q.Get()
				if shutdown {
					return
				}
				process(ctx, q, k, fn, onPanic)
			}
		})
	}
	wg.Wait()
}

// process runs fn for one key and settles it with the queue. Done is
// deferred so that a panicking onPanic still releases the key.
func process[K comparable](ctx context.Context, q *Queue[K], k K, fn func(context.Context, K) error, onPanic func(K, any)) {
	defer q.Done(k)
	if ctx.Err() != nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			q.AddRateLimited(k)
			if onPanic != nil {
				onPanic(k, r)
			}
		}
	}()
	if err := fn(ctx, k); err != nil {
		q.AddRateLimited(k)
		return
	}
	q.Forget(k)
}
