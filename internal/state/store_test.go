package state

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
)

// TestCreateGivesEachJobARevision: bbolt gives each job of one Create a
// revision of its own (the suite asks only for increasing revisions, which
// an etcd transaction gives as one).
func TestCreateGivesEachJobARevision(t *testing.T) {
	d, fc := testStore(t, Options{})
	a, b := newJob(fc, "p", "m-1", "cn-beijing"), newJob(fc, "", "m-2", "cn-shanghai")
	mustCreate(t, d, a, b)
	if a.Revision != 1 || b.Revision != 2 || d.Revision() != 2 {
		t.Fatalf("revisions = %d, %d, store %d; want 1, 2, 2", a.Revision, b.Revision, d.Revision())
	}
}

// TestFailingUpdateDoesNotAffectItsBatch checks that in one group commit a
// refused update is answered alone while the others commit.
func TestFailingUpdateDoesNotAffectItsBatch(t *testing.T) {
	d, fc := testStore(t, Options{})
	ctx := context.Background()
	a, b, c := newJob(fc, "", "m", "r"), newJob(fc, "", "m", "r"), newJob(fc, "", "m", "r")
	mustCreate(t, d, a, b, c)
	d.Close()
	// MaxBatchSize 3 with a long delay: the three updates below share one
	// transaction, whatever the scheduling.
	d, err := Open(d.Path(), Options{MaxBatchDelay: time.Hour, MaxBatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	errs := make([]error, 3)
	calls := make([]int, 3)
	var wg sync.WaitGroup
	for i, id := range []string{a.ID, b.ID, c.ID} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = d.Update(ctx, id, func(j *job.Job) error {
				calls[i]++
				if i == 1 {
					return errors.New("refused")
				}
				j.State = job.StateSubmitting
				return nil
			})
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[2] != nil || errs[1] == nil {
		t.Fatalf("errors = %v, want only the second to fail", errs)
	}
	if !reflect.DeepEqual(calls, []int{1, 1, 1}) {
		t.Fatalf("fn calls = %v, want each exactly once", calls)
	}
	if d.Revision() != 5 {
		t.Fatalf("Revision() = %d, want 5", d.Revision())
	}
}

func TestOptionsValidated(t *testing.T) {
	for _, o := range []Options{{LockTimeout: -1}, {HistoryLimit: -1}, {MaxBatchDelay: -1}, {MaxBatchSize: -1}, {WatchBuffer: -1}} {
		if _, err := Open(t.TempDir()+"/s.db", o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Open(%v) = %v, want ErrInvalidArgument", o, err)
		}
	}
}

// TestStorageErrorRetriesBatchSingly drives the path the writer takes when
// a write fails half way through a request, which bbolt cannot undo alone:
// the batch is retried one request per transaction, so the healthy
// requests commit and the bad one writes nothing. Validation makes such a
// request impossible through the API; here one is submitted directly.
func TestStorageErrorRetriesBatchSingly(t *testing.T) {
	d, fc := testStore(t, Options{})
	a := newJob(fc, "", "m", "r")
	mustCreate(t, d, a)
	d.Close()
	d, err := Open(d.Path(), Options{MaxBatchDelay: time.Hour, MaxBatchSize: 2, Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	// A policy longer than bbolt's 32 KiB key limit fails on the index Put,
	// after the job and its event were written in the transaction.
	bad := newJob(fc, strings.Repeat("p", 40000), "m", "r")
	var wg sync.WaitGroup
	var badErr, goodErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		badErr = d.submit(&request{ctx: ctx, create: []*job.Job{bad}})
	}()
	go func() {
		defer wg.Done()
		_, goodErr = d.Update(ctx, a.ID, setState(job.StateSubmitting))
	}()
	wg.Wait()
	if goodErr != nil {
		t.Fatalf("the healthy update in the batch failed: %v", goodErr)
	}
	if badErr == nil {
		t.Fatal("the oversized create succeeded")
	}
	if _, err := d.Get(ctx, bad.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the failed create left its job behind: %v", err)
	}
	if got, _ := d.Get(ctx, a.ID); got.State != job.StateSubmitting || got.Revision != 2 || d.Revision() != 2 {
		t.Fatalf("after the retry: %s rev %d, store rev %d", got.State, got.Revision, d.Revision())
	}
	d.Close()
	if err := Check(d.Path()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}
