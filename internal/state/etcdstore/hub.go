package etcdstore

import (
	"context"
	"fmt"
	"sort"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/state"
)

const (
	// hubHistory is how many recent changes the hub keeps, so that a
	// watcher starting a little behind (a Watch stream resuming, a list
	// taken a moment ago) joins it rather than opening a watch of its own.
	hubHistory = 4096
	// hubBuffer is each hub watcher's channel, as bbolt's default
	// WatchBuffer: a watcher whose channel is full is dropped (ErrAborted)
	// and resumes from its last revision, so one slow client never holds
	// up the others.
	hubBuffer = 1024
)

// hub is the store's one etcd watch of jobs/, shared by every watcher
// that starts within its history. etcd sends each change once, the hub
// decodes it once and hands the same event to each of its watchers, as
// bbolt's writer does; with an etcd watch per watcher, a thousand Watch
// streams cost a thousand copies of every change on the wire and a
// thousand decodes. A watcher from before the hub's history gets a watch
// of its own (Watch).
type hub struct {
	s      *Store
	cancel context.CancelFunc

	mu      sync.Mutex
	base    int64         // history holds every change the hub has seen above base
	history []state.Event // ascending revisions
	subs    map[*hubWatcher]struct{}
	ended   bool
}

// hubWatcher is a watcher fed by the hub: it has no goroutine; the hub
// sends into ch without blocking, under hub.mu, and closes ch when the
// watch ends.
type hubWatcher struct {
	h *hub
	// from: the watcher wants the changes above it. The hub may not have
	// seen them all yet when the watcher joins (it starts at its first
	// watcher's revision), so it sends only what is above from.
	from  int64
	ch    chan state.Event
	stop  func() bool // stops the context.AfterFunc that ends the watch
	ended bool        // guarded by h.mu, as err
	err   error
}

func (w *hubWatcher) Events() <-chan state.Event { return w.ch }

func (w *hubWatcher) Err() error {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.err
}

func (w *hubWatcher) Close() { w.h.drop(w, nil) }

// joinHub adds a watcher of the changes above from to the store's hub,
// starting the hub if there is none; rev is the store's revision. nil:
// from is older than the hub's history; the caller opens a watch of its
// own.
func (s *Store) joinHub(ctx context.Context, from, rev int64) (state.Watcher, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("etcd store %s is closed: %w", s.p, errdefs.ErrUnavailable)
	}
	h := s.hub
	if h == nil {
		// From from, which etcd still holds (Watch checked), unless that
		// is further back than the history keeps: then from now (rev).
		base := from
		if rev-from > hubHistory/2 {
			base = rev
		}
		h = s.startHubLocked(base)
	}
	s.mu.Unlock()
	return h.join(ctx, from), nil
}

// startHubLocked starts the hub's etcd watch of the changes above base.
// s.mu is held.
func (s *Store) startHubLocked(base int64) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{s: s, cancel: cancel, base: base, subs: map[*hubWatcher]struct{}{}}
	s.hub = h
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.p+"jobs/", clientv3.WithPrefix(), clientv3.WithRev(base+1))
	go h.run(ctx, wch)
	return h
}

// join returns a watcher of the changes above from, first those in the
// history; nil when the history does not reach back to from, or holds
// more than a watcher's buffer after it.
func (h *hub) join(ctx context.Context, from int64) state.Watcher {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended || from < h.base {
		return nil
	}
	i := sort.Search(len(h.history), func(i int) bool { return h.history[i].Revision > from })
	if len(h.history)-i > hubBuffer {
		return nil
	}
	w := &hubWatcher{h: h, from: from, ch: make(chan state.Event, hubBuffer)}
	for _, ev := range h.history[i:] {
		w.ch <- ev
	}
	h.subs[w] = struct{}{}
	// The callback takes h.mu, held here: it runs after join returns.
	w.stop = context.AfterFunc(ctx, func() { h.drop(w, nil) })
	return w
}

func (h *hub) run(ctx context.Context, wch clientv3.WatchChan) {
	for resp := range wch {
		if err := resp.Err(); err != nil {
			h.end(h.s.classifyWatchErr(ctx, err))
			return
		}
		h.publish(h.s.changes(resp.Events))
	}
	if ctx.Err() == nil {
		h.end(fmt.Errorf("etcd store %s: watch ended by the client: %w", h.s.p, errdefs.ErrUnavailable))
	}
}

// publish adds evs to the history and sends them to every watcher, one
// revision at a time: a watcher without room for all of a revision's
// changes (one transaction may change several jobs at one revision) is
// dropped with ErrAborted before any of them, so the revision it resumes
// from is one it got whole.
func (h *hub) publish(evs []state.Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.history = append(h.history, evs...)
	if len(h.history) > hubHistory {
		// Drop the older half, whole revisions at a time.
		cut := len(h.history) - hubHistory/2
		h.base = h.history[cut-1].Revision
		for cut < len(h.history) && h.history[cut].Revision == h.base {
			cut++
		}
		h.history = append([]state.Event(nil), h.history[cut:]...)
	}
	for len(evs) > 0 {
		n := 1
		for n < len(evs) && evs[n].Revision == evs[0].Revision {
			n++
		}
		group := evs[:n]
		evs = evs[n:]
		for w := range h.subs {
			if group[0].Revision <= w.from {
				continue
			}
			if cap(w.ch)-len(w.ch) < len(group) {
				h.dropLocked(w, fmt.Errorf("etcd store %s: the watcher fell %d changes behind; resume from its last revision: %w", h.s.p, len(w.ch), errdefs.ErrAborted))
				continue
			}
			for _, ev := range group {
				w.ch <- ev
			}
		}
	}
}

// end ends the hub and each of its watches with err; the next Watch starts
// a new hub.
func (h *hub) end(err error) {
	h.cancel()
	h.s.mu.Lock()
	if h.s.hub == h {
		h.s.hub = nil
	}
	h.s.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = true
	for w := range h.subs {
		h.dropLocked(w, err)
	}
}

func (h *hub) drop(w *hubWatcher, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(w, err)
}

// dropLocked ends w's watch with err (nil: closed or its context done),
// unless it has ended. h.mu is held.
func (h *hub) dropLocked(w *hubWatcher, err error) {
	if w.ended {
		return
	}
	w.ended, w.err = true, err
	delete(h.subs, w)
	close(w.ch)
	if w.stop != nil {
		w.stop()
	}
}
