package state

import (
	"context"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// historyChunk is how many events a catching-up watcher reads per read
// transaction; short transactions keep bbolt free to reuse pages.
const historyChunk = 256

// watcher delivers events on ch, a channel of Options.WatchBuffer events.
// It has two phases. Catching up, a goroutine of its own reads history from
// the events bucket and sends it, waiting for the client as needed. Live,
// it has no goroutine: the writer sends each committed event straight into
// ch without blocking, and a full ch ends the watch.
type watcher struct {
	d      *DB
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan Event
	done   chan struct{}
	// next is the next revision the catch-up goroutine will send.
	next int64

	// Guarded by d.wmu.
	live      bool
	ended     bool
	liveFrom  int64       // the writer sends only events at or above it
	stopAfter func() bool // stops the context.AfterFunc of a live watcher

	mu  sync.Mutex
	err error
}

// Watch streams every change with a revision above fromRevision: the
// retained history, then live changes, with neither gap nor duplicate.
// fromRevision below the oldest retained change, or above the current
// revision (a client from before the state file was replaced), fails with
// errdefs.ErrOutOfRange: the client must list again. Live events share
// their Job with other watchers: it must not be modified.
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
		ch:   make(chan Event, d.opts.WatchBuffer),
		done: make(chan struct{}),
		next: fromRevision + 1,
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
	go w.catchUp()
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

// finish ends the watch once: err (nil for a done context) becomes Err and
// Events is closed. The caller holds d.wmu, which orders the close after
// every send of the writer.
func (w *watcher) finish(err error) {
	if w.ended {
		return
	}
	w.ended = true
	delete(w.d.watchers, w)
	if w.stopAfter != nil {
		w.stopAfter()
	}
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	w.cancel()
	close(w.ch)
	close(w.done)
}

// catchUp runs on the watcher's goroutine: it sends history until it has
// sent every published revision, then hands the watcher to the writer.
func (w *watcher) catchUp() {
	d := w.d
	defer d.watchWG.Done()
	end := func(err error) {
		d.wmu.Lock()
		w.finish(err)
		d.wmu.Unlock()
	}
	for {
		evs, upTo, full, err := d.readEvents(w.next, historyChunk)
		if err != nil {
			end(err)
			return
		}
		for _, ev := range evs {
			select {
			case w.ch <- ev:
				w.next = ev.Revision + 1
			case <-w.ctx.Done():
				end(nil)
				return
			case <-d.stop:
				end(d.errClosed())
				return
			}
		}
		// Records that did not decode were skipped: move past them too.
		w.next = max(w.next, upTo)
		if full {
			continue
		}
		d.wmu.Lock()
		switch {
		case w.ctx.Err() != nil:
			w.finish(nil)
		case d.closed.Load():
			w.finish(d.errClosed())
		case d.published < w.next:
			// Every published event has been sent; the writer sends the
			// rest, skipping any below next that this goroutine read before
			// they were published.
			w.live, w.liveFrom = true, w.next
			d.watchers[w] = struct{}{}
			w.stopAfter = context.AfterFunc(w.ctx, func() {
				d.wmu.Lock()
				w.finish(nil)
				d.wmu.Unlock()
			})
		default:
			d.wmu.Unlock()
			continue // more was published meanwhile: read it
		}
		d.wmu.Unlock()
		if d.hookLive != nil {
			d.hookLive()
		}
		return
	}
}

// publish hands committed events to the live watchers. It never blocks: a
// watcher whose channel is full is ended, and its client, having received
// every event up to the one that did not fit, resumes from there.
func (d *DB) publish(evs []Event) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.published = evs[len(evs)-1].Revision
	for w := range d.watchers {
	send:
		for _, ev := range evs {
			if ev.Revision < w.liveFrom {
				continue
			}
			select {
			case w.ch <- ev:
			default:
				last := ev.Revision - 1
				w.finish(fmt.Errorf("watcher fell behind at revision %d (%d changes undelivered); resume from %d: %w",
					last, d.opts.WatchBuffer, last, errdefs.ErrAborted))
				break send
			}
		}
	}
}

// endWatchers ends every live watcher when the store closes.
func (d *DB) endWatchers() {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	for w := range d.watchers {
		w.finish(d.errClosed())
	}
}

// readEvents reads up to n event records from revision next on and returns
// the events that decode (the others are reported and skipped), the
// revision after the last record read, and whether n records were read.
// It fails with errdefs.ErrOutOfRange when next has been compacted away
// meanwhile.
func (d *DB) readEvents(next int64, n int) ([]Event, int64, bool, error) {
	var (
		out  []Event
		upTo = next
		full bool
	)
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
		skipped := 0
		for k, v := c.Seek(revKey(next)); k != nil && len(out)+skipped < n; k, v = c.Next() {
			r, err := readU64("events key", k)
			if err != nil {
				return err
			}
			if r != want {
				return fmt.Errorf("state file %s: events: revision %d missing (found %d): %w", d.path, want, r, errdefs.ErrDataLoss)
			}
			key := fmt.Sprintf("events/%d", r)
			j, err := decodeJob(key, v)
			if err != nil {
				// A watcher cannot be sent what cannot be read: report
				// it and go on with the next revision.
				d.reportCorrupt(key, err)
				want++
				skipped++
				continue
			}
			out = append(out, Event{Revision: r, Job: j})
			want++
		}
		if len(out)+skipped < n && want <= rev {
			return fmt.Errorf("state file %s: events: revision %d missing: %w", d.path, want, errdefs.ErrDataLoss)
		}
		upTo, full = want, len(out)+skipped == n
		return nil
	})
	return out, upTo, full, err
}
