package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/state"
)

// watchBuffer is each watcher's channel; etcd buffers beyond it.
const watchBuffer = 64

// Watch streams the changes of jobs with a revision above fromRevision:
// from the store's hub, its one etcd watch of jobs/ shared by every
// watcher within its history, else through an etcd watch of its own (see
// the package doc).
func (s *Store) Watch(ctx context.Context, fromRevision int64) (state.Watcher, error) {
	if fromRevision < 0 {
		return nil, errdefs.Invalid("revision", "must not be negative, got %d", fromRevision)
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	rev, compacted, at, err := s.meta(ctx)
	if err != nil {
		return nil, err
	}
	if fromRevision < at {
		// etcd's own compaction: refuse now rather than end the watch at once.
		_, err := s.cli.Get(ctx, s.metaRevKey(), clientv3.WithRev(fromRevision+1), clientv3.WithCountOnly())
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil, fmt.Errorf("watch from revision %d: compacted by etcd; list again and watch from its revision: %w", fromRevision, errdefs.ErrOutOfRange)
		}
		if err != nil {
			return nil, s.etcdErr(ctx, "watch", err)
		}
	}
	if fromRevision > rev {
		return nil, fmt.Errorf("watch from revision %d: newer than the store's revision %d; list again and watch from its revision: %w",
			fromRevision, rev, errdefs.ErrOutOfRange)
	}
	if fromRevision < compacted {
		return nil, fmt.Errorf("watch from revision %d: compacted, the oldest retained change is revision %d; list again and watch from its revision: %w",
			fromRevision, compacted+1, errdefs.ErrOutOfRange)
	}
	if w, err := s.joinHub(ctx, fromRevision, rev); w != nil || err != nil {
		return w, err
	}
	// Further back than the hub's history: a watch of its own.
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{s: s, ch: make(chan state.Event, watchBuffer), done: make(chan struct{}), cancel: cancel}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("etcd store %s is closed: %w", s.p, errdefs.ErrUnavailable)
	}
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	wch := s.cli.Watch(clientv3.WithRequireLeader(wctx), s.p+"jobs/", clientv3.WithPrefix(), clientv3.WithRev(fromRevision+1))
	go w.run(wctx, wch)
	return w, nil
}

type watcher struct {
	s      *Store
	ch     chan state.Event
	done   chan struct{}
	cancel context.CancelFunc

	mu    sync.Mutex
	ended bool
	err   error
}

func (w *watcher) Events() <-chan state.Event { return w.ch }

func (w *watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *watcher) Close() {
	w.finish(nil)
	<-w.done
}

// finish ends the watch with err, unless it has already ended.
func (w *watcher) finish(err error) {
	w.mu.Lock()
	if !w.ended {
		w.ended, w.err = true, err
	}
	w.mu.Unlock()
	w.cancel()
}

func (w *watcher) run(ctx context.Context, wch clientv3.WatchChan) {
	defer func() {
		w.cancel()
		w.s.mu.Lock()
		delete(w.s.watchers, w)
		w.s.mu.Unlock()
		close(w.ch)
		close(w.done)
	}()
	for resp := range wch {
		if err := resp.Err(); err != nil {
			w.finish(w.s.classifyWatchErr(ctx, err))
			return
		}
		for _, ev := range w.s.changes(resp.Events) {
			select {
			case w.ch <- ev:
			case <-ctx.Done():
				w.finish(nil)
				return
			}
		}
	}
	// The channel closes when ctx is done (Close, the caller's context, or
	// the store's Close, which set the error first).
	if ctx.Err() == nil {
		w.finish(fmt.Errorf("etcd store %s: watch ended by the client: %w", w.s.p, errdefs.ErrUnavailable))
	}
	w.finish(nil)
}

// changes decodes the job changes among an etcd watch response's events:
// puts of jobs/ keys (a removal is not a change). A record that does not
// decode is reported and skipped.
func (s *Store) changes(evs []*clientv3.Event) []state.Event {
	out := make([]state.Event, 0, len(evs))
	for _, ev := range evs {
		if ev.Type != clientv3.EventTypePut {
			continue
		}
		j, err := s.decode(ev.Kv)
		if err != nil {
			s.reportCorrupt(strings.TrimPrefix(string(ev.Kv.Key), s.p), err)
			continue
		}
		out = append(out, state.Event{Revision: ev.Kv.ModRevision, Job: j})
	}
	return out
}

// classifyWatchErr is the error that ends a watch on err from etcd (nil:
// the watch's own context is done).
func (s *Store) classifyWatchErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("watch: the history was compacted by etcd; list again and watch from its revision: %v: %w", err, errdefs.ErrOutOfRange)
	case ctx.Err() != nil:
		return nil
	}
	return fmt.Errorf("etcd store %s: watch: %v: %w", s.p, err, errdefs.ErrAborted)
}
