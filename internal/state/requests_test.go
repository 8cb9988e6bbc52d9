package state

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

func TestCreateRequestReplaysSameID(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx := context.Background()
	a, b := newJob(fc, "", "m-src", "cn-beijing"), newJob(fc, "", "m-src", "cn-shanghai")
	res, err := d.CreateRequest(ctx, &Request{ID: "req-1", Fingerprint: "fp1", Summary: "copy m-src", Jobs: []*job.Job{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed || len(res.Created) != 2 || len(res.Jobs) != 2 || res.Record.JobIDs[0] != a.ID || res.Record.JobIDs[1] != b.ID {
		t.Fatalf("first call: %+v", res)
	}
	rev := d.Revision()

	// The same id and parameters: the same jobs, nothing created.
	c, e := newJob(fc, "", "m-src", "cn-beijing"), newJob(fc, "", "m-src", "cn-shanghai")
	again, err := d.CreateRequest(ctx, &Request{ID: "req-1", Fingerprint: "fp1", Jobs: []*job.Job{c, e}})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || len(again.Created) != 0 || again.Jobs[0].ID != a.ID || again.Jobs[1].ID != b.ID {
		t.Fatalf("replay: %+v", again)
	}
	if d.Revision() != rev {
		t.Fatalf("a replay changed the revision %d -> %d", rev, d.Revision())
	}
	if _, err := d.Get(ctx, c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a replay created job %s: %v", c.ID, err)
	}

	// The same id with other parameters: refused, naming the first request.
	_, err = d.CreateRequest(ctx, &Request{ID: "req-1", Fingerprint: "fp2", Jobs: []*job.Job{newJob(fc, "", "m-other", "cn-beijing")}})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("other parameters = %v, want ErrAlreadyExists", err)
	}
	for _, w := range []string{`"req-1"`, "copy m-src", a.ID, b.ID} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}

	// GetRequest reads it; the record survives a reopen.
	d.Close()
	d2, err := Open(d.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	got, err := d2.GetRequest(ctx, "req-1")
	if err != nil || !got.Replayed || len(got.Jobs) != 2 || got.Record.Fingerprint != "fp1" {
		t.Fatalf("GetRequest after reopen = %+v, %v", got, err)
	}
	if _, err := d2.GetRequest(ctx, "req-2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("GetRequest of an unknown id = %v", err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Check(d.Path()); err != nil {
		t.Fatalf("Check of a file with a request record: %v", err)
	}
}

func TestCreateRequestConcurrentIdenticalCreatesOnce(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx := context.Background()
	const n = 16
	reqs := make([]*Request, n)
	for i := range reqs {
		reqs[i] = &Request{ID: "same", Fingerprint: "fp", Jobs: []*job.Job{newJob(fc, "", "m-src", "cn-beijing")}}
	}
	var wg sync.WaitGroup
	results := make([]*RequestResult, n)
	errs := make([]error, n)
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = d.CreateRequest(ctx, reqs[i])
		}()
	}
	wg.Wait()
	created := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		created += len(results[i].Created)
		if results[i].Jobs[0].ID != results[0].Jobs[0].ID {
			t.Errorf("request %d got job %s, request 0 got %s", i, results[i].Jobs[0].ID, results[0].Jobs[0].ID)
		}
	}
	all, _, _, err := d.List(ctx, Filter{}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if created != 1 || len(all) != 1 {
		t.Fatalf("%d concurrent identical requests created %d jobs (%d stored), want 1", n, created, len(all))
	}
}

func TestCreateRequestReusesExisting(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx := context.Background()
	policyJob := newJob(fc, "golden", "m-src", "cn-beijing")
	other := newJob(fc, "", "m-src", "cn-shenzhen") // another destination
	mustCreate(t, d, policyJob, other)
	reuse := func(existing, wanted *job.Job) bool { return existing.Policy == "golden" }

	// No id: cn-beijing is answered by the policy's job, cn-shanghai created.
	bj, sj := newJob(fc, "", "m-src", "cn-beijing"), newJob(fc, "", "m-src", "cn-shanghai")
	res, err := d.CreateRequest(ctx, &Request{Jobs: []*job.Job{bj, sj}, Reuse: reuse})
	if err != nil {
		t.Fatal(err)
	}
	if res.Jobs[0].ID != policyJob.ID || !res.Record.Existing[0] || res.Jobs[1].ID != sj.ID || res.Record.Existing[1] {
		t.Fatalf("reuse: jobs %s %s existing %v", res.Jobs[0].ID, res.Jobs[1].ID, res.Record.Existing)
	}
	if len(res.Created) != 1 || res.Created[0].ID != sj.ID {
		t.Fatalf("created %v, want only %s", res.Created, sj.ID)
	}
	if _, err := d.Get(ctx, bj.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the reused destination's new job was stored: %v", err)
	}
	if _, err := d.GetRequest(ctx, "x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a request without an id was recorded: %v", err)
	}

	// With an id and every destination reused: nothing is created, but the
	// record is committed and replays.
	res, err = d.CreateRequest(ctx, &Request{ID: "all-reused", Fingerprint: "f", Jobs: []*job.Job{newJob(fc, "", "m-src", "cn-beijing")}, Reuse: reuse})
	if err != nil || len(res.Created) != 0 || res.Jobs[0].ID != policyJob.ID {
		t.Fatalf("all reused: %+v, %v", res, err)
	}
	if got, err := d.GetRequest(ctx, "all-reused"); err != nil || got.Jobs[0].ID != policyJob.ID || !got.Record.Existing[0] {
		t.Fatalf("record of an all-reused request: %+v, %v", got, err)
	}

	// A panicking Reuse fails its request alone.
	_, err = d.CreateRequest(ctx, &Request{Jobs: []*job.Job{newJob(fc, "", "m-src", "cn-beijing")}, Reuse: func(_, _ *job.Job) bool { panic("boom") }})
	if !errors.Is(err, errdefs.ErrInternal) {
		t.Fatalf("panicking Reuse = %v, want ErrInternal", err)
	}
}

func TestCreateRequestValidation(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx := context.Background()
	for _, id := range []string{strings.Repeat("a", 65), "has space", "nul\x00", "é"} {
		_, err := d.CreateRequest(ctx, &Request{ID: id, Jobs: []*job.Job{newJob(fc, "", "m", "r")}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || errdefs.Field(err) != "request_id" {
			t.Errorf("id %q: %v, want an invalid request_id", id, err)
		}
	}
	if _, err := d.CreateRequest(ctx, &Request{ID: "ok"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no jobs: %v", err)
	}
	if err := ValidRequestID(strings.Repeat("~", 64)); err != nil {
		t.Errorf("64 printable characters refused: %v", err)
	}
}

// A garbage record written into a real file is skipped by List, Active,
// Watch and CreateRequest, reported once, and found by Scan and Check.
func TestCorruptRecordsSkippedAndReported(t *testing.T) {
	var mu sync.Mutex
	var reported []string
	onCorrupt := func(key string, err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, key)
	}
	d, fc := testStore(t, Options{})
	good, bad := newJob(fc, "p", "m-src", "cn-beijing"), newJob(fc, "p", "m-src", "cn-beijing")
	mustCreate(t, d, good, bad) // revisions 1 and 2
	d.Close()
	rawUpdate(t, d.Path(), func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketJobs).Put([]byte(bad.ID), []byte("\x01{garbage")); err != nil {
			return err
		}
		return tx.Bucket(bucketEvents).Put(revKey(2), []byte("\x07???"))
	})
	d, err := Open(d.Path(), Options{OnCorrupt: onCorrupt})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for name, f := range map[string]Filter{"all": {}, "policy": {Policy: "p"}, "image": {SourceImageID: "m-src"}, "active": {States: []job.State{job.StateQueued}}} {
		got, _, _, err := d.List(ctx, f, 10, "")
		if err != nil || len(got) != 1 || got[0].ID != good.ID {
			t.Errorf("List(%s) = %d jobs, %v; want only the good one", name, len(got), err)
		}
	}
	if act, err := d.Active(ctx); err != nil || len(act) != 1 || act[0].ID != good.ID {
		t.Errorf("Active = %d jobs, %v", len(act), err)
	}
	w, err := d.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ev := <-w.Events()
	if ev.Revision != 1 || ev.Job.ID != good.ID {
		t.Fatalf("first event %d %s", ev.Revision, ev.Job.ID)
	}
	// The bad event is skipped and the watch goes live: a new change arrives.
	later := newJob(fc, "p", "m-other", "cn-beijing")
	mustCreate(t, d, later)
	if ev := <-w.Events(); ev.Revision != 3 || ev.Job.ID != later.ID {
		t.Fatalf("after the bad event: %d %s, want revision 3", ev.Revision, ev.Job.ID)
	}
	w.Close()
	// CreateRequest's reuse lookup passes over it.
	if _, err := d.CreateRequest(ctx, &Request{Jobs: []*job.Job{newJob(fc, "", "m-src", "cn-beijing")}, Reuse: func(_, _ *job.Job) bool { return false }}); err != nil {
		t.Fatalf("CreateRequest beside a corrupt record: %v", err)
	}
	records, corrupt, err := d.Scan(ctx)
	if err != nil || corrupt != 2 || records < 6 {
		t.Fatalf("Scan = %d records, %d corrupt, %v", records, corrupt, err)
	}
	mu.Lock()
	got := strings.Join(reported, " ")
	mu.Unlock()
	if len(reported) != 2 || !strings.Contains(got, "jobs/"+bad.ID) || !strings.Contains(got, "events/2") {
		t.Errorf("reported %q, want jobs/%s and events/2 once each", got, bad.ID)
	}
	if d.CorruptRecords() != 2 {
		t.Errorf("CorruptRecords = %d", d.CorruptRecords())
	}
	d.Close()
	err = Check(d.Path())
	if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), "jobs/"+bad.ID) || !strings.Contains(err.Error(), "events/2") {
		t.Errorf("Check = %v, want both records named", err)
	}
}

// An empty file, or a bbolt file with no buckets, is refused and left as
// it is; it is never taken for a new store.
func TestEmptyFilesRefused(t *testing.T) {
	dir := t.TempDir()
	empty := dir + "/empty.db"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(empty, Options{})
	if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), "empty (0 bytes)") || !strings.Contains(err.Error(), empty) {
		t.Fatalf("Open of a 0-byte file = %v", err)
	}
	if fi, _ := os.Stat(empty); fi.Size() != 0 {
		t.Fatalf("Open wrote %d bytes into the empty file", fi.Size())
	}
	if err := Check(empty); err == nil || !strings.Contains(err.Error(), "empty (0 bytes)") || strings.Contains(err.Error(), "bad file descriptor") {
		t.Fatalf("Check of a 0-byte file = %v", err)
	}

	bare := dir + "/bare.db"
	db, err := bolt.Open(bare, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := fileHash(t, bare)
	if _, err := Open(bare, Options{}); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "no buckets") {
		t.Fatalf("Open of a bbolt file with no buckets = %v", err)
	}
	if fileHash(t, bare) != before {
		t.Fatal("Open changed the bucketless bbolt file")
	}
	if err := Check(bare); err == nil || !strings.Contains(err.Error(), "no buckets") {
		t.Fatalf("Check of a bbolt file with no buckets = %v", err)
	}

	// A new file is made whole: no temporary file is left beside it.
	d, err := Open(dir+"/new.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".new-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if err := Check(dir + "/new.db"); err != nil {
		t.Fatalf("Check of a new file: %v", err)
	}
}
