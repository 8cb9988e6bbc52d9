package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/state/etcdstore"
	"github.com/replicatord/replicatord/internal/state/statetest"
)

// elect starts a candidate id on base's prefix and campaigns until it
// leads, returning the candidate and its fenced store.
func elect(t *testing.T, base *etcdstore.Store, id string) (*etcdstore.Elector, *etcdstore.Store) {
	t.Helper()
	e, err := base.NewElector(context.Background(), etcdstore.ElectionOptions{ID: id, TTL: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewElector %s: %v", id, err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := e.Campaign(ctx)
	if err != nil {
		t.Fatalf("Campaign %s: %v", id, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return e, f
}

// TestFencedStoreSuite: a leader's fenced store keeps the whole Store
// contract while it leads (the fence's compare changes no other outcome).
func TestFencedStoreSuite(t *testing.T) {
	var mu sync.Mutex
	electors := map[state.Store]*etcdstore.Elector{} // fenced store -> its candidate
	elected := func(t *testing.T, prefix string, clk clock.Clock, id string) state.Store {
		e, f := elect(t, open(t, prefix, clk), id)
		mu.Lock()
		electors[f] = e
		mu.Unlock()
		return f
	}
	statetest.Run(t, statetest.Backend{
		Open: func(t *testing.T, clk clock.Clock) state.Store {
			prefix := fmt.Sprintf("/test/fenced-%d-%s/", stores.Add(1), strings.ReplaceAll(t.Name(), "/", "_"))
			return elected(t, prefix, clk, "leader")
		},
		Reopen: func(t *testing.T, s state.Store, clk clock.Clock) state.Store {
			if err := s.Close(); err != nil {
				t.Fatalf("Close before reopen: %v", err)
			}
			// A restarted leader's session ends with it; it campaigns
			// again on a new one.
			mu.Lock()
			e := electors[s]
			mu.Unlock()
			if err := e.Close(); err != nil {
				t.Fatalf("closing the old session: %v", err)
			}
			return elected(t, s.(*etcdstore.Store).Prefix(), clk, "leader-again")
		},
	})
}

// TestFencingRefusesAfterLeaseLoss: a leader writes through its fenced
// store; once its lease is revoked (as when it was paused past its TTL)
// every kind of write is refused with ErrLeadershipLost and changes
// nothing; a second candidate then wins, and its writes succeed while the
// old leader's are still refused.
func TestFencingRefusesAfterLeaseLoss(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(statetest.Epoch)
	base := open(t, "/test/fencing/", fc)
	a, fa := elect(t, base, "a")
	if got, err := a.Leader(ctx); err != nil || got != "a" {
		t.Fatalf("Leader = %q, %v; want a", got, err)
	}

	// While it leads, a's writes land.
	kept := queued(fc, "m-1")
	if err := fa.Create(ctx, kept); err != nil {
		t.Fatalf("leader's Create: %v", err)
	}
	done := queued(fc, "m-2")
	if err := fa.Create(ctx, done); err != nil {
		t.Fatal(err)
	}
	if _, err := fa.Update(ctx, done.ID, func(j *job.Job) error { j.State = job.StateCancelled; return nil }); err != nil {
		t.Fatalf("leader's Update: %v", err)
	}

	// b campaigns now, and waits behind a.
	b, err := base.NewElector(ctx, etcdstore.ElectionOptions{ID: "b", TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	type won struct {
		s   *etcdstore.Store
		err error
	}
	bWon := make(chan won, 1)
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	go func() { s, err := b.Campaign(cctx); bWon <- won{s, err} }()

	// a's lease ends, as it does when a stops renewing it for longer than
	// its TTL.
	if _, err := cli.Revoke(ctx, a.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a's session did not end after its lease was revoked")
	}
	before := base.Revision()
	refused(t, "a (lease revoked)", fa, fc, kept, done)
	if got := base.Revision(); got != before {
		t.Fatalf("refused writes moved the store from revision %d to %d", before, got)
	}
	if j, err := base.Get(ctx, kept.ID); err != nil || j.State != job.StateQueued || j.ProgressPercent != 0 || j.Revision != kept.Revision {
		t.Fatalf("job after refused writes = %+v, %v; want it unchanged", j, err)
	}
	if _, err := base.Get(ctx, done.ID); err != nil {
		t.Fatalf("a refused RemoveFinished removed a job: %v", err)
	}
	if _, err := base.GetRequest(ctx, "req-a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a refused CreateRequest recorded its id: %v", err)
	}

	// b leads now; its fenced writes land, a's are still refused.
	var w won
	select {
	case w = <-bWon:
	case <-time.After(60 * time.Second):
		t.Fatal("b did not win after a's lease ended")
	}
	if w.err != nil {
		t.Fatalf("b's Campaign: %v", w.err)
	}
	defer w.s.Close()
	if got, err := b.Leader(ctx); err != nil || got != "b" {
		t.Fatalf("Leader = %q, %v; want b", got, err)
	}
	if _, err := w.s.Update(ctx, kept.ID, func(j *job.Job) error { j.ProgressPercent = 50; return nil }); err != nil {
		t.Fatalf("new leader's Update: %v", err)
	}
	if err := w.s.Create(ctx, queued(fc, "m-3")); err != nil {
		t.Fatalf("new leader's Create: %v", err)
	}
	refused(t, "a (after b won)", fa, fc, kept, done)
	if j, _ := base.Get(ctx, kept.ID); j.ProgressPercent != 50 {
		t.Fatalf("job progress = %d, want the new leader's 50", j.ProgressPercent)
	}
}

// refused asserts that every write through s fails with
// ErrLeadershipLost (of class ErrUnavailable).
func refused(t *testing.T, who string, s *etcdstore.Store, fc *clock.Fake, existing, finished *job.Job) {
	t.Helper()
	ctx := context.Background()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, etcdstore.ErrLeadershipLost) || !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "leadership lost") {
			t.Errorf("%s: %s = %v, want ErrLeadershipLost", who, op, err)
		}
	}
	check("Create", s.Create(ctx, queued(fc, "m-new")))
	p := queued(fc, "m-new")
	p.Policy = "golden"
	_, err := s.CreateUnlessCancelled(ctx, p)
	check("CreateUnlessCancelled", err)
	_, err = s.Update(ctx, existing.ID, func(j *job.Job) error { j.ProgressPercent = 99; return nil })
	check("Update", err)
	_, err = s.Update(ctx, existing.ID, func(j *job.Job) error {
		j.CancelRequested, j.CancelledBy, j.CancelTime = true, "test", fc.Now()
		return nil
	})
	check("Update (cancel)", err)
	_, err = s.CreateRequest(ctx, &state.Request{ID: "req-a", Fingerprint: "f", Jobs: []*job.Job{queued(fc, "m-req")}})
	check("CreateRequest", err)
	_, err = s.RemoveFinished(ctx, fc.Now().Add(24*time.Hour), 10)
	check("RemoveFinished", err)
	if t.Failed() {
		t.FailNow()
	}
	_ = finished
}

// TestResignHandsOver: a leader that resigns (SIGTERM) hands leadership
// to the waiting candidate at once, without waiting for its lease, and its
// own fenced writes are refused from then on.
func TestResignHandsOver(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(statetest.Epoch)
	base := open(t, "/test/resign/", fc)
	a, fa := elect(t, base, "a")
	b, err := base.NewElector(ctx, etcdstore.ElectionOptions{ID: "b", TTL: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bWon := make(chan error, 1)
	go func() { _, err := b.Campaign(ctx); bWon <- err }()
	if err := a.Resign(ctx); err != nil {
		t.Fatalf("Resign: %v", err)
	}
	// Well inside a's 5 s lease, which is still alive: the hand-over is
	// the resign, not an expiry.
	select {
	case err := <-bWon:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b did not win after a resigned")
	}
	select {
	case <-a.Done():
		t.Fatal("a's session ended; a resign must not end it")
	default:
	}
	if err := fa.Create(ctx, queued(fc, "m-1")); !errors.Is(err, etcdstore.ErrLeadershipLost) {
		t.Fatalf("resigned leader's Create = %v, want ErrLeadershipLost", err)
	}
	if got, err := a.Leader(ctx); err != nil || got != "b" {
		t.Fatalf("Leader = %q, %v; want b", got, err)
	}
}

// TestMembers: each candidate's member key lives on its session; a
// closed session removes it.
func TestMembers(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(statetest.Epoch)
	base := open(t, "/test/members/", fc)
	var es []*etcdstore.Elector
	for _, id := range []string{"r2", "r1"} {
		e, err := base.NewElector(ctx, etcdstore.ElectionOptions{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if err := e.Register(ctx, etcdstore.Member{ID: id, Address: id + ":7443", Version: "v1", ConfigHash: "h-" + id, Started: statetest.Epoch}); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	if err := es[0].Register(ctx, etcdstore.Member{ID: "other"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Register of another id = %v, want InvalidArgument", err)
	}
	ms, err := base.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].ID != "r1" || ms[1].ID != "r2" || ms[1].Address != "r2:7443" || ms[1].ConfigHash != "h-r2" || !ms[1].Started.Equal(statetest.Epoch) {
		t.Fatalf("members = %+v", ms)
	}
	if err := es[0].Close(); err != nil {
		t.Fatal(err)
	}
	if ms, err := base.Members(ctx); err != nil || len(ms) != 1 || ms[0].ID != "r1" {
		t.Fatalf("members after r2's session closed = %+v, %v; want only r1", ms, err)
	}
	if _, err := base.NewElector(ctx, etcdstore.ElectionOptions{ID: "a/b"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("NewElector with a / in the id = %v, want InvalidArgument", err)
	}
	if _, err := base.NewElector(ctx, etcdstore.ElectionOptions{ID: "x", TTL: 1500 * time.Millisecond}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("NewElector with a TTL of 1.5 s = %v, want InvalidArgument", err)
	}
}

// TestFresh: a new prefix is fresh until its first change, and stays not
// fresh when reopened (Revision() is never 0 on etcd, so it cannot say).
func TestFresh(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(statetest.Epoch)
	s := open(t, "/test/fresh/", fc)
	if fresh, err := s.Fresh(ctx); err != nil || !fresh {
		t.Fatalf("Fresh on a new prefix = %v, %v; want true", fresh, err)
	}
	if s.Revision() == 0 {
		t.Fatal("Revision() is 0 on etcd; the daemon's old freshness test would hold")
	}
	if again, err := s.Fresh(ctx); err != nil || !again {
		t.Fatalf("Fresh after reading = %v, %v; want true", again, err)
	}
	if err := s.Create(ctx, queued(fc, "m-1")); err != nil {
		t.Fatal(err)
	}
	if fresh, err := s.Fresh(ctx); err != nil || fresh {
		t.Fatalf("Fresh after a Create = %v, %v; want false", fresh, err)
	}
	if fresh, err := open(t, "/test/fresh/", fc).Fresh(ctx); err != nil || fresh {
		t.Fatalf("Fresh after reopening = %v, %v; want false", fresh, err)
	}
}
