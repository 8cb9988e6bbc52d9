package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/input"
	"github.com/replicatord/replicatord/internal/job"
)

// Request is an API request that creates jobs (a Copy), given to
// Store.CreateRequest so that what it creates and the record that makes it
// idempotent are written together.
type Request struct {
	// ID is the client's request id; "" records nothing, so the request
	// cannot be replayed.
	ID string
	// Fingerprint identifies the request's parameters: a later request with
	// the same ID and another fingerprint is refused.
	Fingerprint string
	// Summary says what the request asked, for the error that refuses a
	// reused id ("copy m-... from cn-hangzhou to cn-beijing").
	Summary string
	// Jobs are the jobs to create, one per destination. Each needs an id
	// and a state, as for Create.
	Jobs []*job.Job
	// Reuse, when not nil, is asked about each existing job with the same
	// source region, source image id and destination region as one of
	// Jobs, newest first; the first it accepts answers the request instead
	// of that new job, which is then not created. It runs inside the write
	// transaction, like an Update function: quick, no side effects, no
	// store calls.
	Reuse func(existing, wanted *job.Job) bool
}

// RequestRecord is what the store keeps of a request with an id.
type RequestRecord struct {
	ID          string    `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Summary     string    `json:"summary,omitempty"`
	CreateTime  time.Time `json:"create_time"`
	// JobIDs answer the request, in the order of its Jobs.
	JobIDs []string `json:"job_ids"`
	// Existing[i] is true when JobIDs[i] existed before the request.
	Existing []bool `json:"existing,omitempty"`
}

// ErrReused is the errdefs.ErrAlreadyExists error for a new request that
// reuses this record's id with other parameters; it names the earlier
// request.
func (r *RequestRecord) ErrReused() error {
	return fmt.Errorf("request_id %q was already used at %s by another request (%s; jobs %s); use a new request_id for a different request: %w",
		r.ID, r.CreateTime.UTC().Format(time.RFC3339), r.Summary, strings.Join(r.JobIDs, ", "), errdefs.ErrAlreadyExists)
}

// RequestResult is the answer to CreateRequest or GetRequest.
type RequestResult struct {
	// Record is the request as stored (ID "" for a request without one).
	Record RequestRecord
	// Jobs are the jobs of Record.JobIDs as they are now.
	Jobs []*job.Job
	// Created are the jobs this call created (a subset of Jobs).
	Created []*job.Job
	// Replayed is true when the id was recorded by an earlier call: Jobs
	// are that call's and nothing was created.
	Replayed bool
}

// ValidRequestID returns why id is not a request id, or nil: 1 to 64
// printable ASCII characters other than space (input.CheckRequestID).
func ValidRequestID(id string) error { return input.CheckRequestID(id) }

const codecRequestJSON byte = 1

func encodeRequest(r *RequestRecord) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode request %q: %v: %w", r.ID, err, errdefs.ErrInternal)
	}
	return append([]byte{codecRequestJSON}, b...), nil
}

func decodeRequest(what string, b []byte) (*RequestRecord, error) {
	if len(b) == 0 || b[0] != codecRequestJSON {
		return nil, fmt.Errorf("%s: not a request record: %w", what, errdefs.ErrDataLoss)
	}
	r := new(RequestRecord)
	if err := json.Unmarshal(b[1:], r); err != nil {
		return nil, fmt.Errorf("%s: record does not decode: %v: %w", what, err, errdefs.ErrDataLoss)
	}
	if len(r.Existing) != 0 && len(r.Existing) != len(r.JobIDs) {
		return nil, fmt.Errorf("%s: %d job ids but %d existing flags: %w", what, len(r.JobIDs), len(r.Existing), errdefs.ErrDataLoss)
	}
	return r, nil
}

// GetRequest returns the recorded request id with its jobs as they are now
// (Replayed set), or errdefs.ErrNotFound.
func (d *DB) GetRequest(ctx context.Context, id string) (*RequestResult, error) {
	if err := ValidRequestID(id); err != nil {
		return nil, errdefs.Invalid("request_id", "%v", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var res *RequestResult
	err := d.view(func(tx *bolt.Tx) error {
		rec, err := getRequest(tx, id)
		if err != nil {
			return err
		}
		res, err = replay(tx, rec)
		return err
	})
	return res, err
}

func getRequest(tx *bolt.Tx, id string) (*RequestRecord, error) {
	v := tx.Bucket(bucketRequests).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("request %q: %w", id, errdefs.ErrNotFound)
	}
	return decodeRequest("requests/"+id, v)
}

// replay reads the jobs of a recorded request.
func replay(tx *bolt.Tx, rec *RequestRecord) (*RequestResult, error) {
	res := &RequestResult{Record: *rec, Replayed: true}
	for _, id := range rec.JobIDs {
		j, err := getJob(tx, id)
		if err != nil {
			return nil, fmt.Errorf("request %q names job %s: %w", rec.ID, id, err)
		}
		res.Jobs = append(res.Jobs, j)
	}
	return res, nil
}

// CreateRequest creates the jobs of r and, when r has an id, records the
// id with r's fingerprint and the answer, in one transaction:
//
//   - an id already recorded with the same fingerprint returns the recorded
//     answer (Replayed) and creates nothing;
//   - an id recorded with another fingerprint fails with
//     errdefs.ErrAlreadyExists naming the earlier request, changing nothing;
//   - otherwise each job of r is replaced by an existing one Reuse accepts,
//     or created, and the id is recorded.
//
// So concurrent identical requests create their jobs once.
func (d *DB) CreateRequest(ctx context.Context, r *Request) (*RequestResult, error) {
	if r == nil || len(r.Jobs) == 0 {
		return nil, errdefs.Invalid("jobs", "a request needs at least one job")
	}
	if r.ID != "" {
		if err := ValidRequestID(r.ID); err != nil {
			return nil, errdefs.Invalid("request_id", "%v", err)
		}
	}
	seen := make(map[string]bool, len(r.Jobs))
	clone := *r
	clone.Jobs = make([]*job.Job, len(r.Jobs))
	for i, j := range r.Jobs {
		if err := validateNew(j); err != nil {
			return nil, err
		}
		if seen[j.ID] {
			return nil, fmt.Errorf("job %q appears twice in one request: %w", j.ID, errdefs.ErrInvalidArgument)
		}
		seen[j.ID] = true
		clone.Jobs[i] = j.Clone()
	}
	req := &request{ctx: ctx, creq: &clone}
	if err := d.submit(req); err != nil {
		return nil, err
	}
	return req.cres, nil
}

// applyCreateRequest is CreateRequest inside the write transaction. It
// returns the new revision, whether it wrote anything, the request's own
// error and a storage error that may have left partial writes.
func (d *DB) applyCreateRequest(tx *bolt.Tx, rev int64, r *request) (int64, bool, error, error) {
	cr := r.creq
	reqs := tx.Bucket(bucketRequests)
	if cr.ID != "" {
		if v := reqs.Get([]byte(cr.ID)); v != nil {
			rec, err := decodeRequest("requests/"+cr.ID, v)
			if err != nil {
				return rev, false, err, nil
			}
			if rec.Fingerprint != cr.Fingerprint {
				return rev, false, rec.ErrReused(), nil
			}
			res, err := replay(tx, rec)
			if err != nil {
				return rev, false, err, nil
			}
			r.cres = res
			return rev, false, nil, nil
		}
	}
	rec := RequestRecord{ID: cr.ID, Fingerprint: cr.Fingerprint, Summary: cr.Summary, CreateTime: d.now()}
	res := &RequestResult{}
	var create []*job.Job
	for _, want := range cr.Jobs {
		var found *job.Job
		if cr.Reuse != nil {
			var err error
			if found, err = d.findReusable(tx, want, cr.Reuse); err != nil {
				return rev, false, err, nil
			}
		}
		if found != nil {
			rec.JobIDs = append(rec.JobIDs, found.ID)
			rec.Existing = append(rec.Existing, true)
			res.Jobs = append(res.Jobs, found)
			continue
		}
		rec.JobIDs = append(rec.JobIDs, want.ID)
		rec.Existing = append(rec.Existing, false)
		res.Jobs = append(res.Jobs, want)
		create = append(create, want)
	}
	wrote := false
	if len(create) > 0 {
		sub := &request{create: create}
		var reqErr, storageErr error
		rev, reqErr, storageErr = d.applyCreate(tx, rev, sub)
		if reqErr != nil || storageErr != nil {
			return rev, false, reqErr, storageErr
		}
		r.events = sub.events
		res.Created = sub.out
		wrote = true
	}
	if cr.ID != "" {
		b, err := encodeRequest(&rec)
		if err != nil {
			return rev, wrote, err, nil
		}
		if err := reqs.Put([]byte(cr.ID), b); err != nil {
			return rev, wrote, nil, err
		}
		wrote = true
	}
	res.Record = rec
	r.cres = res
	return rev, wrote, nil, nil
}

// findReusable returns the newest job with want's source and destination
// that reuse accepts, or nil. Undecodable records are reported and passed
// over, as List does.
func (d *DB) findReusable(tx *bolt.Tx, want *job.Job, reuse func(existing, wanted *job.Job) bool) (*job.Job, error) {
	jobs := tx.Bucket(bucketJobs)
	next := descIDs(tx.Bucket(bucketIndex).Bucket(indexImage), pairKey(want.SourceImageID, ""), "")
	for {
		id, ok := next()
		if !ok {
			return nil, nil
		}
		v := jobs.Get([]byte(id))
		if v == nil {
			return nil, fmt.Errorf("state file %s: index/image names job %q, which does not exist: %w", d.path, id, errdefs.ErrDataLoss)
		}
		j, err := decodeJob("jobs/"+id, v)
		if err != nil {
			d.reportCorrupt("jobs/"+id, err)
			continue
		}
		if j.SourceRegion != want.SourceRegion || j.DestinationRegion != want.DestinationRegion {
			continue
		}
		ok, err = callReuse(reuse, j, want)
		if err != nil {
			return nil, err
		}
		if ok {
			return j, nil
		}
	}
}

func callReuse(fn func(existing, wanted *job.Job) bool, existing, wanted *job.Job) (ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reuse function panicked on job %q: %v: %w", existing.ID, p, errdefs.ErrInternal)
		}
	}()
	return fn(existing.Clone(), wanted.Clone()), nil
}
