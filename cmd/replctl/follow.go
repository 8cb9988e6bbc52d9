package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/errgrpc"
)

// Reconnect backoff of watch after a lost connection.
var (
	reconnectMin = 250 * time.Millisecond
	reconnectMax = 5 * time.Second
)

// follower feeds one or more streams into a tracker and a sink.
type follower struct {
	a   *app
	tr  *tracker
	out sink
	// rev is the revision to resume a watch from: the last change seen,
	// or the snapshot's revision once the snapshot is complete.
	rev int64
	// atRev holds the jobs already shown at rev. A resumed watch sends the
	// changes at its from_revision again (one transaction may change
	// several jobs at one revision, and the broken stream may have missed
	// some): those already shown are skipped.
	atRev map[string]bool
}

// saw records the change of job id (none: "") at rev as shown.
func (f *follower) saw(rev int64, id string) {
	if rev > f.rev {
		f.rev, f.atRev = rev, nil
	}
	if rev == f.rev && id != "" {
		if f.atRev == nil {
			f.atRev = map[string]bool{}
		}
		f.atRev[id] = true
	}
}

// opener starts a stream with the given context and returns its receive
// function.
type opener func(ctx context.Context) (func() (proto.Message, error), error)

// recvOf adapts a typed server stream to an opener's receive function.
func recvOf[T any, PT interface {
	*T
	proto.Message
}](s grpc.ServerStreamingClient[T]) func() (proto.Message, error) {
	return func() (proto.Message, error) {
		m, err := s.Recv()
		if err != nil {
			return nil, err
		}
		return PT(m), nil
	}
}

// pump opens a stream and receives from it until it fails (io.EOF on a
// clean end), handing every message to handle, and ticks the sink while it
// waits. It returns nil when handle reports done. The stream lives in a
// context of its own, cancelled before pump returns, so the receiving
// goroutine always ends.
func (f *follower) pump(ctx context.Context, open opener, handle func(proto.Message) (bool, error)) error {
	type result struct {
		m   proto.Message
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv, err := open(ctx)
	if err != nil {
		return err
	}
	results := make(chan result)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := recv()
			select {
			case results <- result{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// Deferred calls run last-in first-out: cancel ends a blocked recv,
	// then Wait collects the goroutine.
	defer wg.Wait()
	defer cancel()

	var tick <-chan time.Time
	if d := f.out.refresh(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case r := <-results:
			if r.err != nil {
				return r.err
			}
			done, err := handle(r.m)
			if err != nil || done {
				return err
			}
		case <-tick:
			if err := f.out.tick(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// show records a job and shows the message it came in.
func (f *follower) show(raw proto.Message, j *replicatorv1.Job) error {
	if j != nil {
		f.tr.update(j, f.a.now())
	}
	return f.out.message(raw, j)
}

// watch runs Watch with req until stop reports true or ctx ends, resuming
// from the last revision after a lost connection and from a fresh snapshot
// when that revision was compacted away. stop may be nil (run until ctx ends).
// connected tells whether a stream already worked (so the daemon exists and
// an unreachable daemon means "reconnect", not "wrong address").
func (f *follower) watch(ctx context.Context, client replicatorv1.ReplicatorServiceClient, req *replicatorv1.WatchRequest, stop func() bool, connected bool) error {
	f.rev = req.GetFromRevision()
	backoff := reconnectMin
	for {
		r := proto.Clone(req).(*replicatorv1.WatchRequest)
		r.FromRevision = f.rev
		received := false
		err := f.watchOnce(ctx, client, r, stop, connected, &received)
		if err == nil || ctx.Err() != nil {
			return err
		}
		connected = connected || received
		err = errgrpc.ToNative(err)
		switch {
		case errors.Is(err, errdefs.ErrOutOfRange) && f.rev != 0:
			f.out.note(fmt.Sprintf("revision %d is no longer retained (compacted); restarting from a fresh snapshot", f.rev))
			f.rev, f.atRev = 0, nil
			continue
		case errors.Is(err, io.EOF) || (connected && errors.Is(err, errdefs.ErrUnavailable)) || (received && errors.Is(err, errdefs.ErrInternal)):
			// The daemon went away (restart, network); it keeps the history,
			// so resume where we were.
		default:
			return err
		}
		if received {
			backoff = reconnectMin
		}
		f.out.note(fmt.Sprintf("connection lost; reconnecting from revision %d", f.rev))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, reconnectMax)
		connected = true
	}
}

// watchOnce runs one Watch stream. It returns nil when stop says so.
func (f *follower) watchOnce(ctx context.Context, client replicatorv1.ReplicatorServiceClient, req *replicatorv1.WatchRequest, stop func() bool, connected bool, received *bool) error {
	var opts []grpc.CallOption
	if connected {
		opts = append(opts, grpc.WaitForReady(true))
	}
	open := func(ctx context.Context) (func() (proto.Message, error), error) {
		stream, err := client.Watch(ctx, req, opts...)
		if err != nil {
			return nil, err
		}
		return recvOf(stream), nil
	}
	from := req.GetFromRevision()
	inSnapshot := from == 0
	return f.pump(ctx, open, func(m proto.Message) (bool, error) {
		w := m.(*replicatorv1.WatchResponse)
		if !*received {
			*received = true
			f.out.note("")
		}
		switch {
		case w.GetSnapshotComplete():
			inSnapshot = false
			f.saw(w.GetRevision(), "")
		case !w.GetSnapshot() && !inSnapshot:
			if from > 0 && w.GetRevision() == from && f.atRev[w.GetJob().GetId()] {
				return false, nil // shown before the stream broke
			}
			f.saw(w.GetRevision(), w.GetJob().GetId())
		}
		if err := f.show(w, w.GetJob()); err != nil {
			return true, err
		}
		return stop != nil && !inSnapshot && stop(), nil
	})
}
