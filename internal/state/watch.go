package state

import (
	"context"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// historyChunk is how many events a catching-up watcher reads per read
// transaction; short transactions keep bbolt free to reuse pages.
const historyChunk = 256

// errWatchDone ends a watcher whose context is done or that was closed; its
// Err is then nil.
var errWatchDone = errors.New("watch done")

type watcher struct {
	d      *DB
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan Event
	done   chan struct{}
	// next is the next revision to deliver; owned by the watcher goroutine.
	next int64
	// liveFrom is next at the switch to live events: the writer queues
	// only events at or above it. Guarded by d.wmu.
	liveFrom int64
	signal   chan struct{}

	mu       sync.Mutex
	queue    []Event
	overflow bool
	err      error
}

// Watch streams every change with a revision above fromRevision: the
// retained history, then live changes, with neither gap nor duplicate.
// fromRevision below the oldest retained change, or above the current
// revision (a client from before the state file was replaced), fails with
// errdefs.ErrOutOfRange: the client must list again. Each Event.Job is the
// watcher's own copy.
func (d *DB) Watch(ctx context.Context, fromRevision int64) (Watcher, error) {
	if fromRevision < 0 {
		return nil, errdefs.Invalid("from_revision", "must not be negative, got %d", fromRevision)
	}
	var rev, compacted int64
	if err := d.view(func(tx *bolt.Tx) error {
		var err error
		rev, compacted, err = readRevisions(d.path, tx)
		return err
	}); err != nil {
		return nil, err
	}
	if fromRevision > rev {
		return nil, fmt.Errorf("revision %d is newer than the store's revision %d (was the state file replaced?); list again and watch from the list's revision: %w",
			fromRevision, rev, errdefs.ErrOutOfRange)
	}
	if fromRevision < compacted {
		return nil, fmt.Errorf("revision %d has been compacted; the oldest retained change is revision %d, so watch from %d or later, or list again: %w",
			fromRevision, compacted+1, compacted, errdefs.ErrOutOfRange)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		d: d, ctx: wctx, cancel: cancel,
		ch:     make(chan Event),
		done:   make(chan struct{}),
		next:   fromRevision + 1,
		signal: make(chan struct{}, 1),
	}
	// Adding under wmu orders this Add before Close's Wait (see Close).
	d.wmu.Lock()
	if d.closed.Load() {
		d.wmu.Unlock()
		cancel()
		return nil, d.errClosed()
	}
	d.watchWG.Add(1)
	d.wmu.Unlock()
	go w.run()
	return w, nil
}

func (w *watcher) Events() <-chan Event { return w.ch }

func (w *watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close ends the watch and waits until Events is closed.
func (w *watcher) Close() {
	w.cancel()
	<-w.done
}

func (w *watcher) run() {
	defer w.d.watchWG.Done()
	err := w.catchUp()
	if err == nil {
		err = w.followLive()
	}
	w.d.wmu.Lock()
	delete(w.d.watchers, w)
	w.d.wmu.Unlock()
	if errors.Is(err, errWatchDone) {
		err = nil
	}
	w.mu.Lock()
	w.err = err
	w.queue = nil
	w.mu.Unlock()
	w.cancel()
	close(w.ch)
	close(w.done)
}

// catchUp delivers history from the events bucket until it has delivered
// every published revision, then registers for live events.
func (w *watcher) catchUp() error {
	d := w.d
	for {
		evs, err := d.readEvents(w.next, historyChunk)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := w.send(ev); err != nil {
				return err
			}
		}
		if len(evs) == historyChunk {
			continue
		}
		d.wmu.Lock()
		if d.published < w.next {
			w.liveFrom = w.next
			d.watchers[w] = struct{}{}
			d.wmu.Unlock()
			if d.hookLive != nil {
				d.hookLive()
			}
			return nil
		}
		d.wmu.Unlock()
	}
}

func (w *watcher) followLive() error {
	for {
		select {
		case <-w.signal:
		case <-w.ctx.Done():
			return errWatchDone
		case <-w.d.stop:
			return w.d.errClosed()
		}
		w.mu.Lock()
		q, overflow := w.queue, w.overflow
		w.queue = nil
		w.mu.Unlock()
		if overflow {
			last := w.next - 1
			return fmt.Errorf("watcher fell behind at revision %d (more than %d changes undelivered); resume from %d: %w",
				last, w.d.opts.WatchBuffer, last, errdefs.ErrAborted)
		}
		for _, ev := range q {
			if err := w.send(ev); err != nil {
				return err
			}
		}
	}
}

// send delivers a copy of ev, so that watchers never share a job.
func (w *watcher) send(ev Event) error {
	select {
	case w.ch <- Event{Revision: ev.Revision, Job: ev.Job.Clone()}:
		w.next = ev.Revision + 1
		return nil
	case <-w.ctx.Done():
		return errWatchDone
	case <-w.d.stop:
		return w.d.errClosed()
	}
}

// push queues committed events for a live watcher; called by the writer
// under d.wmu. It never blocks: a full queue drops the watcher.
func (w *watcher) push(evs []Event, limit int) {
	w.mu.Lock()
	if !w.overflow {
		for _, ev := range evs {
			if ev.Revision < w.liveFrom {
				continue
			}
			if len(w.queue) >= limit {
				w.overflow = true
				w.queue = nil
				break
			}
			w.queue = append(w.queue, ev)
		}
	}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// publish hands committed events to the live watchers.
func (d *DB) publish(evs []Event) {
	d.wmu.Lock()
	d.published = evs[len(evs)-1].Revision
	for w := range d.watchers {
		w.push(evs, d.opts.WatchBuffer)
	}
	d.wmu.Unlock()
}

// readEvents returns up to n events from revision next on. It fails with
// errdefs.ErrOutOfRange when next has been compacted away meanwhile.
func (d *DB) readEvents(next int64, n int) ([]Event, error) {
	var out []Event
	err := d.view(func(tx *bolt.Tx) error {
		rev, compacted, err := readRevisions(d.path, tx)
		if err != nil {
			return err
		}
		if next <= compacted {
			return fmt.Errorf("watcher fell behind at revision %d: changes up to revision %d were compacted meanwhile; list again: %w",
				next-1, compacted, errdefs.ErrOutOfRange)
		}
		c := tx.Bucket(bucketEvents).Cursor()
		want := next
		for k, v := c.Seek(revKey(next)); k != nil && len(out) < n; k, v = c.Next() {
			r, err := readU64("events key", k)
			if err != nil {
				return err
			}
			if r != want {
				return fmt.Errorf("state file %s: events: revision %d missing (found %d): %w", d.path, want, r, errdefs.ErrDataLoss)
			}
			j, err := decodeJob(fmt.Sprintf("events/%d", r), v)
			if err != nil {
				return err
			}
			out = append(out, Event{Revision: r, Job: j})
			want++
		}
		if len(out) < n && want <= rev {
			return fmt.Errorf("state file %s: events: revision %d missing: %w", d.path, want, errdefs.ErrDataLoss)
		}
		return nil
	})
	return out, err
}
