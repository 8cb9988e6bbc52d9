package state

import (
	"fmt"
	"time"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// The rules below are the Store contract's own, written once for every
// backend (bbolt here, internal/state/etcdstore): validation, what an
// Update may change, how an Update moves a cancel tombstone, which finished
// jobs retention keeps, the record codec and page tokens. A backend only
// decides where the bytes go.

// ValidateCreate checks the jobs of a Create: each has a valid id (at most
// 256 bytes, no NUL byte) and a known state, its indexed fields are
// bounded, and no id appears twice. It returns ErrInvalidArgument errors.
func ValidateCreate(jobs []*job.Job) error {
	seen := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		if err := validateNew(j); err != nil {
			return err
		}
		if seen[j.ID] {
			return fmt.Errorf("job %q appears twice in one create: %w", j.ID, errdefs.ErrInvalidArgument)
		}
		seen[j.ID] = true
	}
	return nil
}

// ValidateUpdateArgs checks Update's arguments.
func ValidateUpdateArgs(id string, fn func(*job.Job) error) error {
	if err := validateID(id); err != nil {
		return err
	}
	if fn == nil {
		return errdefs.Invalid("fn", "update function is nil")
	}
	return nil
}

// ApplyUpdate runs fn on a copy of the stored job old, as Update
// documents: fn's error is returned unchanged, a panic becomes
// ErrInternal, a changed id or unknown state ErrInvalidArgument, a state
// change job.CheckTransition refuses ErrFailedPrecondition. It returns the
// new job with old's Revision and UpdateTime (the caller sets both when it
// stores it) and whether fn changed anything.
func ApplyUpdate(old *job.Job, fn func(*job.Job) error) (*job.Job, bool, error) {
	j := old.Clone()
	if err := callFn(fn, j); err != nil {
		return nil, false, err
	}
	if j.ID != old.ID {
		return nil, false, errdefs.Invalid("id", "update of job %q changed its id to %q", old.ID, j.ID)
	}
	if err := validateState(j.ID, j.State); err != nil {
		return nil, false, err
	}
	if err := job.CheckTransition(old.State, j.State); err != nil {
		return nil, false, fmt.Errorf("job %q: %v: %w", j.ID, err, errdefs.ErrFailedPrecondition)
	}
	if err := validateIndexed(j); err != nil {
		return nil, false, err
	}
	j.Revision, j.UpdateTime = old.Revision, old.UpdateTime
	a, err := encodeJob(old)
	if err != nil {
		return nil, false, err
	}
	b, err := encodeJob(j)
	if err != nil {
		return nil, false, err
	}
	return j, string(a) != string(b), nil
}

// TombstoneChange says what an Update from old to j does to the cancel
// tombstone of j's pair (see Store.CreateUnlessCancelled): put is the
// tombstone to write, or lift is true when the pair's tombstone is to be
// deleted if it names j. Jobs without a policy have none.
func TombstoneChange(old, j *job.Job) (put *job.Tombstone, lift bool) {
	if j.Policy == "" {
		return nil, false
	}
	switch {
	case j.CancelRequested && !old.CancelRequested:
		return &job.Tombstone{Policy: j.Policy, SourceImageID: j.SourceImageID,
			DestinationRegion: j.DestinationRegion, JobID: j.ID, By: j.CancelledBy, Time: j.CancelTime}, false
	case old.State.Terminal() && j.State == job.StateQueued, j.CancelLifted != "" && old.CancelLifted == "":
		return nil, true
	}
	return nil, false
}

// Expired reports whether j is finished and has not changed since before
// cutoff, the first condition for RemoveFinished.
func Expired(j *job.Job, cutoff time.Time) bool { return expired(j, cutoff) }

// KeptForPlan reports whether retention must keep the expired job j
// although it is old, given the other jobs of its source image (any
// policy, region or state: KeptForPlan picks its pair's) and whether its
// pair's tombstone names it. See Store.RemoveFinished, and removable in
// retention.go for why the plan needs the jobs kept.
func KeptForPlan(j *job.Job, sameImage []*job.Job, tombstoned bool) bool {
	if j.Policy == "" {
		return false
	}
	if tombstoned {
		return true
	}
	if j.State != job.StateSucceeded && j.State != job.StateFailed && j.State != job.StateCancelled {
		return false
	}
	newer, newerSucceeded := false, false
	for _, o := range sameImage {
		if o.ID == j.ID || o.Policy != j.Policy || o.DestinationRegion != j.DestinationRegion || !newerJob(o, j) {
			continue
		}
		newer = true
		newerSucceeded = newerSucceeded || o.State == job.StateSucceeded
	}
	return !(newer && (newerSucceeded || j.State != job.StateSucceeded))
}

// EncodeJob and DecodeJob are the record codec: a version byte, then JSON
// of job.Job. DecodeJob fails with ErrDataLoss naming what.
func EncodeJob(j *job.Job) ([]byte, error)              { return encodeJob(j) }
func DecodeJob(what string, b []byte) (*job.Job, error) { return decodeJob(what, b) }

// EncodeRequest and DecodeRequest are the codec of request records.
func EncodeRequest(r *RequestRecord) ([]byte, error) { return encodeRequest(r) }
func DecodeRequest(what string, b []byte) (*RequestRecord, error) {
	return decodeRequest(what, b)
}

// ListLimit applies List's limit rules: <= 0 is 100, above 1000 is 1000.
func ListLimit(limit int) int {
	if limit <= 0 {
		return defaultListLimit
	}
	return min(limit, maxListLimit)
}

// EncodePageToken and DecodePageToken are List's page tokens (the last id
// returned); DecodePageToken fails with ErrInvalidArgument on page_token.
func EncodePageToken(lastID string) string       { return encodeToken(lastID) }
func DecodePageToken(tok string) (string, error) { return decodeToken(tok) }

// CallReuse asks a Request's Reuse about existing, turning a panic into
// ErrInternal.
func CallReuse(fn func(existing, wanted *job.Job) bool, existing, wanted *job.Job) (bool, error) {
	return callReuse(fn, existing, wanted)
}

// ValidateRequest checks a CreateRequest's request and returns a copy
// whose jobs the caller may change.
func ValidateRequest(r *Request) (*Request, error) {
	if r == nil || len(r.Jobs) == 0 {
		return nil, errdefs.Invalid("jobs", "a request needs at least one job")
	}
	if r.ID != "" {
		if err := ValidRequestID(r.ID); err != nil {
			return nil, errdefs.Invalid("request_id", "%v", err)
		}
	}
	if err := ValidateCreate(r.Jobs); err != nil {
		return nil, err
	}
	clone := *r
	clone.Jobs = make([]*job.Job, len(r.Jobs))
	for i, j := range r.Jobs {
		clone.Jobs[i] = j.Clone()
	}
	return &clone, nil
}
