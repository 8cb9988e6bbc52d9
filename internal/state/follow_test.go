package state

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// A follower whose watch falls behind (its buffer fills while the client
// is slow) is resumed from the last revision it saw: the client still gets
// every change once, in order, and Follow ends when Done is met.
func TestFollowResumesAFallenBehindWatch(t *testing.T) {
	d, fc := testStore(t, Options{WatchBuffer: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	live := make(chan struct{}, 1)
	d.hookLive = func() {
		select {
		case live <- struct{}{}:
		default:
		}
	}
	release := make(chan struct{})
	var mu sync.Mutex
	var got []int64
	var resumed []int64
	errc := make(chan error, 1)
	go func() {
		errc <- Follow(ctx, d, FollowOptions{
			From: j.Revision,
			Done: func(j *job.Job) bool { return j.ProgressPercent == 20 },
			Want: 1,
			Resumed: func(from int64, reason error) {
				mu.Lock()
				defer mu.Unlock()
				if !errors.Is(reason, errdefs.ErrAborted) {
					t.Errorf("resumed because of %v, want a fallen-behind watch (ErrAborted)", reason)
				}
				resumed = append(resumed, from)
			},
		}, func(rev int64, _ *job.Job) error {
			mu.Lock()
			first := len(got) == 0
			got = append(got, rev)
			mu.Unlock()
			if first {
				<-release // the client is slow: the watch's buffer fills
			}
			return nil
		})
	}()
	select {
	case <-live:
	case <-ctx.Done():
		t.Fatal("the watch never went live")
	}
	for range 20 {
		bump(t, d, j.ID)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("Follow: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(resumed) == 0 {
		t.Fatal("the watch never fell behind; the test proves nothing")
	}
	for i, rev := range got {
		if want := j.Revision + 1 + int64(i); rev != want {
			t.Fatalf("revisions %v: %d at %d, want %d (a gap or a repeat)", got, rev, i, want)
		}
	}
	if len(got) != 20 {
		t.Fatalf("got %d changes, want 20: %v", len(got), got)
	}
}

// Seen skips what a snapshot already sent; Filter drops other jobs; Stop
// ends the stream with UNAVAILABLE naming the revision to resume from.
func TestFollowSeenFilterStop(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := newJob(fc, "p", "m-a", "r"), newJob(fc, "q", "m-b", "r")
	mustCreate(t, d, a, b) // revisions 1 and 2
	from := int64(0)
	bumped := bump(t, d, a.ID) // revision 3
	bump(t, d, b.ID)           // revision 4, another policy
	snap, rev, err := snapshotAll(ctx, d, Filter{Policy: "p"})
	if err != nil || len(snap) != 1 || snap[0].ID != a.ID || rev != 4 {
		t.Fatalf("Snapshot = %d jobs at %d, %v; want job a at revision 4", len(snap), rev, err)
	}
	stop := make(chan struct{})
	sent := make(chan int64, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- Follow(ctx, d, FollowOptions{
			Filter: Filter{Policy: "p"}, From: from, Stop: stop,
			Seen: map[string]int64{a.ID: bumped.Revision},
		}, func(rev int64, _ *job.Job) error { sent <- rev; return nil })
	}()
	last := bump(t, d, a.ID) // revision 5: the first change the follower has not seen
	select {
	case rev := <-sent:
		if rev != last.Revision {
			t.Fatalf("first change sent: revision %d, want %d (1 and 3 were seen, 2 and 4 are another policy's)", rev, last.Revision)
		}
	case <-ctx.Done():
		t.Fatal("no change sent")
	}
	close(stop)
	err = <-errc
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "resume with from_revision 5") {
		t.Fatalf("after Stop: %v, want ErrUnavailable naming revision 5", err)
	}
}

// A send error ends Follow with that error; a compacted start revision is
// the store's ErrOutOfRange.
func TestFollowEndings(t *testing.T) {
	d, fc := testStore(t, Options{HistoryLimit: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	for range 5 {
		bump(t, d, j.ID)
	}
	if err := Follow(ctx, d, FollowOptions{From: 0}, func(int64, *job.Job) error { return nil }); !errors.Is(err, errdefs.ErrOutOfRange) {
		t.Fatalf("from a compacted revision: %v, want ErrOutOfRange", err)
	}
	boom := errors.New("client gone")
	errc := make(chan error, 1)
	go func() {
		errc <- Follow(ctx, d, FollowOptions{From: d.Revision()}, func(int64, *job.Job) error { return boom })
	}()
	bump(t, d, j.ID)
	if err := <-errc; !errors.Is(err, boom) {
		t.Fatalf("send failed: Follow returned %v", err)
	}
	snap, _, err := snapshotAll(ctx, d, Filter{IDs: []string{j.ID, job.NewID(fc.Now())}})
	if !errors.Is(err, errdefs.ErrNotFound) || snap != nil {
		t.Fatalf("Snapshot of an unknown id: %v, %v", snap, err)
	}
}

// Current sends each job as it is now, in revision order, before any
// change: not its history, and a job already Done counts, so Follow ends
// without waiting for a change that will never come. Then it follows from
// the revision the jobs were read at. An unknown id is an error.
func TestFollowCurrent(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := newJob(fc, "", "m-a", "r"), newJob(fc, "", "m-b", "r")
	mustCreate(t, d, a, b) // revisions 1 and 2
	bump(t, d, b.ID)       // 3
	bump(t, d, a.ID)       // 4
	doneB := bump(t, d, b.ID)
	done := func(j *job.Job) bool { return j.ProgressPercent >= 2 }

	type sent struct {
		id  string
		rev int64
	}
	var mu sync.Mutex
	var got []sent
	send := func(rev int64, j *job.Job) error {
		mu.Lock()
		defer mu.Unlock()
		if rev != j.Revision {
			t.Errorf("sent revision %d with a job at revision %d", rev, j.Revision)
		}
		got = append(got, sent{j.ID, rev})
		return nil
	}
	// b is done already: with Want 1 the current jobs alone end Follow.
	err := Follow(ctx, d, FollowOptions{Filter: Filter{IDs: []string{b.ID, a.ID}}, Current: true, Done: done, Want: 1}, send)
	if err != nil {
		t.Fatalf("Follow, one job already done: %v", err)
	}
	if want := []sent{{a.ID, 4}, {b.ID, doneB.Revision}}; !slices.Equal(got, want) {
		t.Fatalf("sent %v, want each job once as it is now, in revision order: %v", got, want)
	}

	// Want 2: a's next change after the current jobs' revision ends it.
	got = nil
	errc := make(chan error, 1)
	live := make(chan struct{}, 1)
	d.hookLive = func() {
		select {
		case live <- struct{}{}:
		default:
		}
	}
	go func() {
		errc <- Follow(ctx, d, FollowOptions{Filter: Filter{IDs: []string{a.ID, b.ID}}, Current: true, Done: done, Want: 2}, send)
	}()
	select {
	case <-live:
	case <-ctx.Done():
		t.Fatal("the watch never went live")
	}
	doneA := bump(t, d, a.ID)
	if err := <-errc; err != nil {
		t.Fatalf("Follow: %v", err)
	}
	mu.Lock()
	if want := []sent{{a.ID, 4}, {b.ID, doneB.Revision}, {a.ID, doneA.Revision}}; !slices.Equal(got, want) {
		t.Fatalf("sent %v, want the current jobs then a's change: %v", got, want)
	}
	mu.Unlock()

	err = Follow(ctx, d, FollowOptions{Filter: Filter{IDs: []string{a.ID, "j-nope"}}, Current: true}, send)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Current with an unknown id: %v, want ErrNotFound", err)
	}
}

// snapshotAll collects what Snapshot sends.
func snapshotAll(ctx context.Context, s Store, f Filter) ([]*job.Job, int64, error) {
	var out []*job.Job
	rev, _, err := Snapshot(ctx, s, f, func(_ int64, j *job.Job) error { out = append(out, j); return nil })
	if err != nil {
		return nil, 0, err
	}
	return out, rev, nil
}

// pageCounter is the real store, counting the List pages read through it.
type pageCounter struct {
	*DB
	pages, maxLimit int
}

func (p *pageCounter) List(ctx context.Context, f Filter, limit int, token string) ([]*job.Job, string, int64, error) {
	p.pages++
	p.maxLimit = max(p.maxLimit, limit)
	return p.DB.List(ctx, f, limit, token)
}

// Snapshot reads a page at a time and sends as it reads, while the store
// changes under it: a job changed before its page is read is sent as
// changed, and is the only one it reports (so the follower's Seen holds
// the changes made during the snapshot, not every job); following from
// the snapshot's revision with it then sends every later change once,
// never a job going back, and the jobs created meanwhile.
func TestSnapshotPagesThenFollow(t *testing.T) {
	defer func(n int) { snapshotPage = n }(snapshotPage)
	snapshotPage = 3
	d, fc := testStore(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var jobs []*job.Job
	for i := range 10 {
		jobs = append(jobs, newJob(fc, "p", "m-a", "r"))
		if i%4 == 0 {
			jobs = append(jobs, newJob(fc, "q", "m-a", "r")) // filtered out
		}
	}
	mustCreate(t, d, jobs...)
	oldest, newest := jobs[0], jobs[len(jobs)-1] // newest is policy p
	if newest.Policy != "p" {
		t.Fatalf("fixture: newest job is policy %q", newest.Policy)
	}
	store := &pageCounter{DB: d}
	type msg struct {
		id       string
		rev, jrv int64
	}
	var got []msg
	var late, early, fresh *job.Job
	rev, changed, err := Snapshot(ctx, store, Filter{Policy: "p"}, func(rev int64, j *job.Job) error {
		got = append(got, msg{j.ID, rev, j.Revision})
		if len(got) == 1 {
			// While the first page is being sent: change a job of a
			// later page and one already sent, and create one.
			late = bump(t, d, oldest.ID)
			early = bump(t, d, newest.ID)
			fresh = newJob(fc, "p", "m-b", "r")
			mustCreate(t, d, fresh)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if store.pages != 4 || store.maxLimit != 3 {
		t.Fatalf("Snapshot read %d pages of at most %d jobs, want 4 pages of 3 (10 jobs)", store.pages, store.maxLimit)
	}
	if len(got) != 10 {
		t.Fatalf("snapshot sent %d jobs, want the 10 of policy p: %v", len(got), got)
	}
	for i, m := range got {
		if m.rev != rev {
			t.Fatalf("snapshot message %d at revision %d, want the snapshot's %d", i, m.rev, rev)
		}
		if m.id == oldest.ID && m.jrv != late.Revision {
			t.Fatalf("the oldest job was sent at revision %d; its page was read after its change %d", m.jrv, late.Revision)
		}
	}
	if want := map[string]int64{oldest.ID: late.Revision}; !maps.Equal(changed, want) {
		t.Fatalf("changed = %v, want only the job read at a revision above %d: %v", changed, rev, want)
	}

	var followed []msg
	err = Follow(ctx, d, FollowOptions{
		Filter: Filter{Policy: "p"}, From: rev, Seen: changed,
		Done: func(j *job.Job) bool { return j.ID == fresh.ID }, Want: 1,
	}, func(rev int64, j *job.Job) error {
		followed = append(followed, msg{j.ID, rev, j.Revision})
		return nil
	})
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	want := []msg{{early.ID, early.Revision, early.Revision}, {fresh.ID, fresh.Revision, fresh.Revision}}
	if !slices.Equal(followed, want) {
		t.Fatalf("followed %v, want the sent job's change and the new job, not the oldest job again: %v", followed, want)
	}
	if len(changed) != 0 {
		t.Fatalf("Seen after the stream passed its revisions: %v, want empty", changed)
	}
}
