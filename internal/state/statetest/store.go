package statetest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

func testCreateGet(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	base := d.Revision()
	a, b := newJob(fc, "p", "m-1", "cn-beijing"), newJob(fc, "", "m-2", "cn-shanghai")
	mustCreate(t, d, a, b)

	if a.Revision <= base || b.Revision < a.Revision {
		t.Fatalf("revisions = %d, %d; want above the store's %d, in order", a.Revision, b.Revision, base)
	}
	if !a.CreateTime.Equal(fc.Now()) || !a.UpdateTime.Equal(fc.Now()) {
		t.Fatalf("times = %v / %v, want the clock's %v", a.CreateTime, a.UpdateTime, fc.Now())
	}
	if d.Revision() != b.Revision {
		t.Fatalf("Revision() = %d, want the newest job's %d", d.Revision(), b.Revision)
	}
	got, err := d.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("Get = %+v\nwant %+v", got, a)
	}
	// The store keeps its own copy: changing the caller's job changes nothing.
	a.Tags["team"] = "changed"
	got, _ = d.Get(ctx, a.ID)
	if got.Tags["team"] != "infra" {
		t.Fatalf("stored job aliases the caller's: tags %v", got.Tags)
	}
	if _, err := d.Get(ctx, "j-missing"); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "j-missing") {
		t.Fatalf("Get(missing) = %v, want ErrNotFound naming the id", err)
	}
}

func testCreateExplicitCreateTimeKept(t *testing.T, be Backend) {
	d, fc := open(t, be)
	j := newJob(fc, "", "m", "r")
	j.CreateTime = Epoch.Add(-time.Hour)
	mustCreate(t, d, j)
	got, _ := d.Get(context.Background(), j.ID)
	if !got.CreateTime.Equal(Epoch.Add(-time.Hour)) {
		t.Fatalf("CreateTime = %v, want the given one", got.CreateTime)
	}
}

func testCreateIsAtomic(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	old := newJob(fc, "", "m", "r")
	mustCreate(t, d, old)
	rev := d.Revision()
	fresh := newJob(fc, "", "m", "r")
	err := d.Create(ctx, fresh, &job.Job{ID: old.ID, State: job.StateQueued})
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), old.ID) {
		t.Fatalf("Create with an existing id = %v, want ErrAlreadyExists naming it", err)
	}
	if _, err := d.Get(ctx, fresh.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the other job of a failed Create was stored: %v", err)
	}
	if d.Revision() != rev {
		t.Fatalf("Revision() = %d after a failed Create, want %d", d.Revision(), rev)
	}
}

func testCreateValidation(t *testing.T, be Backend) {
	d, fc := open(t, be)
	base := d.Revision()
	j := newJob(fc, "", "m", "r")
	cases := map[string][]*job.Job{
		"nil job":       {nil},
		"empty id":      {{State: job.StateQueued}},
		"long id":       {{ID: strings.Repeat("x", 300), State: job.StateQueued}},
		"NUL in id":     {{ID: "a\x00b", State: job.StateQueued}},
		"no state":      {{ID: "j-1"}},
		"unknown state": {{ID: "j-1", State: 42}},
		"NUL in policy": {{ID: "j-1", State: job.StateQueued, Policy: "p\x00"}},
		"long region":   {{ID: "j-1", State: job.StateQueued, DestinationRegion: strings.Repeat("r", 2000)}},
		"duplicate":     {j, j},
	}
	for name, jobs := range cases {
		err := d.Create(context.Background(), jobs...)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Create = %v, want ErrInvalidArgument", name, err)
		}
	}
	if d.Revision() != base {
		t.Fatalf("invalid creates changed the store: revision %d, was %d", d.Revision(), base)
	}
}

func testUpdate(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	fc.Step(time.Minute)

	got, err := d.Update(ctx, j.ID, func(j *job.Job) error {
		j.State = job.StateSubmitting
		j.Revision = 999 // the store owns Revision
		j.UpdateTime = time.Time{}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != job.StateSubmitting || got.Revision <= j.Revision || got.Revision != d.Revision() || !got.UpdateTime.Equal(fc.Now()) {
		t.Fatalf("Update = state %s rev %d time %v; want SUBMITTING, the store's new revision (above %d, store at %d), %v",
			got.State, got.Revision, got.UpdateTime, j.Revision, d.Revision(), fc.Now())
	}
	stored, _ := d.Get(ctx, j.ID)
	if !reflect.DeepEqual(stored, got) {
		t.Fatalf("stored %+v\nreturned %+v", stored, got)
	}
	// The returned job is the caller's: changing it changes nothing stored.
	got.State = job.StateFailed
	if s, _ := d.Get(ctx, j.ID); s.State != job.StateSubmitting {
		t.Fatalf("returned job aliases the store")
	}
}

func testUpdateErrors(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)

	if _, err := d.Update(ctx, "j-nope", setState(job.StateFailed)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}
	boom := errors.New("boom")
	if _, err := d.Update(ctx, j.ID, func(j *job.Job) error { j.State = job.StateFailed; return boom }); err != boom {
		t.Errorf("fn error: got %v, want it unchanged", err)
	}
	_, err := d.Update(ctx, j.ID, setState(job.StateSucceeded)) // QUEUED -> SUCCEEDED is not allowed
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "QUEUED cannot become SUCCEEDED") {
		t.Errorf("refused transition: %v, want ErrFailedPrecondition explaining it", err)
	}
	if _, err := d.Update(ctx, j.ID, func(j *job.Job) error { j.ID = "j-other"; return nil }); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("changed id: %v, want ErrInvalidArgument", err)
	}
	if _, err := d.Update(ctx, j.ID, setState(job.StateUnspecified)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unspecified state: %v, want ErrInvalidArgument", err)
	}
	if _, err := d.Update(ctx, j.ID, func(*job.Job) error { panic("bug") }); !errors.Is(err, errdefs.ErrInternal) {
		t.Errorf("panicking fn: %v, want ErrInternal", err)
	}
	if _, err := d.Update(ctx, j.ID, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil fn: %v, want ErrInvalidArgument", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Update(cctx, j.ID, setState(job.StateSubmitting)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v, want context.Canceled", err)
	}
	got, _ := d.Get(ctx, j.ID)
	if got.State != job.StateQueued || got.Revision != j.Revision || d.Revision() != j.Revision {
		t.Fatalf("failed updates changed the job: %s rev %d, store rev %d", got.State, got.Revision, d.Revision())
	}
}

func testNoOpUpdateWritesNothing(t *testing.T, be Backend) {
	d, fc := open(t, be)
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	got, err := d.Update(context.Background(), j.ID, func(j *job.Job) error { j.State = job.StateQueued; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != j.Revision || d.Revision() != j.Revision {
		t.Fatalf("no-op update bumped the revision: job %d store %d", got.Revision, d.Revision())
	}
}

// testConcurrentUpdatesGetDistinctRevisions drives concurrent writers (the group commit in bbolt): many
// goroutines update at once; every update must get its own revision and
// none may be lost.
func testConcurrentUpdatesGetDistinctRevisions(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	const workers, each = 16, 40
	jobs := make([]*job.Job, workers)
	for i := range jobs {
		jobs[i] = newJob(fc, "", "m", "r")
	}
	mustCreate(t, d, jobs...)
	rev0 := d.Revision()
	var (
		mu   sync.Mutex
		seen = map[int64]bool{}
		wg   sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// Alternate between shared and own jobs, so batches hold
				// several updates of one job.
				id := jobs[(w+i%2)%workers].ID
				got, err := d.Update(ctx, id, func(j *job.Job) error { j.Retries++; return nil })
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[got.Revision] || got.Revision <= rev0 {
					t.Errorf("revision %d given twice, or not above the %d before", got.Revision, rev0)
				}
				seen[got.Revision] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	newest := int64(0)
	for r := range seen {
		newest = max(newest, r)
	}
	if len(seen) != workers*each || d.Revision() != newest {
		t.Fatalf("%d distinct revisions for %d updates; Revision() = %d, newest update %d", len(seen), workers*each, d.Revision(), newest)
	}
	var total int32
	for _, j := range jobs {
		got, _ := d.Get(ctx, j.ID)
		total += got.Retries
	}
	if total != workers*each {
		t.Fatalf("sum of Retries = %d, want %d: updates were lost", total, workers*each)
	}
}

func testClose(t *testing.T, be Backend) {
	d, fc := open(t, be)
	ctx := context.Background()
	j := newJob(fc, "", "m", "r")
	mustCreate(t, d, j)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checks := map[string]error{
		"Create": d.Create(ctx, newJob(fc, "", "m", "r")),
	}
	_, checks["Update"] = d.Update(ctx, j.ID, setState(job.StateFailed))
	_, checks["Get"] = d.Get(ctx, j.ID)
	_, _, _, checks["List"] = d.List(ctx, state.Filter{}, 0, "")
	_, checks["Active"] = d.Active(ctx)
	_, checks["Watch"] = d.Watch(ctx, 0)
	for op, err := range checks {
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
			t.Errorf("%s after Close = %v, want ErrUnavailable saying closed", op, err)
		}
	}
}
