// Package job is the model of a copy job: one source image copied to one
// destination region. It holds the record that the state store persists, the
// scheduler moves through its states and the gRPC edge converts to
// replicator.v1.Job. It imports nothing of the project, so every layer can
// use it.
package job

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// State is where a job is in its life. The numbers equal replicator.v1.JobState.
type State int32

const (
	StateUnspecified State = 0
	StateQueued      State = 1 // waiting in replicatord for a slot
	StateSubmitting  State = 2 // intent durable, CopyImage being sent
	StateWaiting     State = 3 // accepted, queued at ECS
	StateCopying     State = 4 // ECS is copying
	StateSucceeded   State = 5
	StateFailed      State = 6
	StateCancelling  State = 7 // CancelCopyImage sent or to be sent
	StateCancelled   State = 8
	// StatePruned: the job's copy was Available (the job SUCCEEDED) and is
	// gone now: deleted by retention, or by someone else. Only SUCCEEDED
	// means "launchable".
	StatePruned State = 9
)

var stateNames = map[State]string{
	StateUnspecified: "UNSPECIFIED", StateQueued: "QUEUED", StateSubmitting: "SUBMITTING",
	StateWaiting: "WAITING", StateCopying: "COPYING", StateSucceeded: "SUCCEEDED",
	StateFailed: "FAILED", StateCancelling: "CANCELLING", StateCancelled: "CANCELLED",
	StatePruned: "PRUNED",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Terminal reports whether a job in state s will not change by itself again.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled || s == StatePruned
}

// InCloud reports whether a job in state s may have a copy in ECS that
// replicatord is responsible for.
func (s State) InCloud() bool {
	return s == StateSubmitting || s == StateWaiting || s == StateCopying || s == StateCancelling
}

// rank orders states along a job's life, so that a watcher can check that a
// job never moves backwards within one attempt. Retry starts a new attempt
// and may go back to QUEUED.
var rank = map[State]int{
	StateQueued: 1, StateSubmitting: 2, StateWaiting: 3, StateCopying: 4,
	StateCancelling: 5, StateSucceeded: 6, StateFailed: 6, StateCancelled: 6,
	StatePruned: 7,
}

// Rank returns the position of s in a job's life.
func (s State) Rank() int { return rank[s] }

// allowed lists the legal transitions. A transition not listed is a bug in
// the engine and is refused by CheckTransition.
var allowed = map[State][]State{
	StateQueued:     {StateSubmitting, StateCancelled, StateFailed},
	StateSubmitting: {StateQueued, StateWaiting, StateCopying, StateSucceeded, StateFailed, StateCancelling, StateCancelled},
	StateWaiting:    {StateCopying, StateSucceeded, StateFailed, StateCancelling, StateQueued},
	StateCopying:    {StateWaiting, StateSucceeded, StateFailed, StateCancelling, StateQueued},
	StateCancelling: {StateCancelled, StateSucceeded, StateFailed},
	StateSucceeded:  {StatePruned},
	StateFailed:     {StateQueued},
	StateCancelled:  {StateQueued},
	StatePruned:     {},
}

// CheckTransition returns an error when a job may not go from one state to
// another. Staying in the same state is always allowed.
func CheckTransition(from, to State) error {
	if from == to {
		return nil
	}
	for _, s := range allowed[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("job state %s cannot become %s", from, to)
}

// Error explains why a job failed, in the cloud's own words when it came
// from the cloud.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
	Retryable bool   `json:"retryable,omitempty"`
}

// Action is a post-copy action (image family, sharing, tags).
type Action struct {
	Name  string `json:"name"`
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
}

// Job is one copy of one source image to one destination region.
type Job struct {
	ID       string `json:"id"`
	Policy   string `json:"policy,omitempty"`
	Priority int32  `json:"priority,omitempty"`

	SourceRegion    string `json:"source_region"`
	SourceImageID   string `json:"source_image_id"`
	SourceImageName string `json:"source_image_name,omitempty"`
	SizeGiB         int64  `json:"size_gib,omitempty"`

	DestinationRegion      string            `json:"destination_region"`
	DestinationImageID     string            `json:"destination_image_id,omitempty"`
	DestinationImageName   string            `json:"destination_image_name,omitempty"`
	DestinationDescription string            `json:"destination_description,omitempty"`
	Encrypted              bool              `json:"encrypted,omitempty"`
	KMSKeyID               string            `json:"kms_key_id,omitempty"`
	Tags                   map[string]string `json:"tags,omitempty"`
	// Post-copy settings (from a policy).
	ImageFamily   string   `json:"image_family,omitempty"`
	ShareAccounts []string `json:"share_accounts,omitempty"`

	State           State         `json:"state"`
	ProgressPercent int32         `json:"progress_percent,omitempty"`
	CloudStatus     string        `json:"cloud_status,omitempty"`
	Remaining       time.Duration `json:"remaining,omitempty"`
	Error           *Error        `json:"error,omitempty"`
	Attempts        int32         `json:"attempts,omitempty"`
	// AttemptBase is Attempts when the job was last retried by hand: the
	// MaxAttempts budget counts from there, while Attempts keeps growing so
	// that every attempt has its own ClientToken.
	AttemptBase int32 `json:"attempt_base,omitempty"`
	// Retries counts retryable failures within the current attempt, for backoff.
	Retries int32 `json:"retries,omitempty"`
	// ClientToken is the CopyImage idempotency token of the current attempt.
	// It is stored before CopyImage is sent.
	ClientToken string `json:"client_token,omitempty"`
	// CancelRequested is set by Cancel; the scheduler acts on it until the
	// copy is gone, whatever ECS answers, outside the retry budget.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// CancelledBy and CancelTime say who asked for the cancel and when; the
	// store keeps a tombstone of a cancelled policy job's (policy, source,
	// destination) from them, so that no reconcile brings the pair back.
	CancelledBy string    `json:"cancelled_by,omitempty"`
	CancelTime  time.Time `json:"cancel_time,omitzero"`
	// CancelLifted: a policy change that names the source image lifted the
	// tombstone of this cancelled job's pair (the job stays CANCELLED).
	CancelLifted string `json:"cancel_lifted,omitempty"`
	// Adopted: the job follows a copy found by its tags that no job of this
	// installation's store knew (a lost or new state file). The copy is not
	// proven to be ours: it is never deleted, cancelled or modified unless
	// its policy sets retention.prune_adopted. AdoptionReason says what it
	// was matched on.
	Adopted        bool   `json:"adopted,omitempty"`
	AdoptionReason string `json:"adoption_reason,omitempty"`
	// Failure is why a job fails once its copy is removed: a job that
	// fails with a copy in ECS goes CANCELLING (without CancelRequested)
	// and ends FAILED with this error once the copy is gone.
	Failure *Error `json:"failure,omitempty"`
	// LookupFirst: the next submit first looks for a copy an earlier attempt
	// may have left in ECS (set by Retry when no copy was recorded).
	LookupFirst bool `json:"lookup_first,omitempty"`
	// PruneReason says why a PRUNED job's copy is gone (FinishTime is when
	// replicatord saw it go).
	PruneReason string   `json:"prune_reason,omitempty"`
	PostCopy    []Action `json:"post_copy,omitempty"`

	// ProgressTime is when ECS reported ProgressPercent and Remaining (the
	// poll that saw them). Zero in records written before it existed:
	// UpdateTime stands in (see ProgressObserved).
	ProgressTime time.Time `json:"progress_time,omitzero"`

	CreateTime      time.Time `json:"create_time"`
	UpdateTime      time.Time `json:"update_time"`
	FinishTime      time.Time `json:"finish_time,omitzero"`
	SubmitTime      time.Time `json:"submit_time,omitzero"`
	NextAttemptTime time.Time `json:"next_attempt_time,omitzero"`

	// Revision is the store revision of the job's last change; set by the store.
	Revision int64 `json:"revision"`
}

// Clone returns a deep copy of j.
func (j *Job) Clone() *Job {
	if j == nil {
		return nil
	}
	c := *j
	if j.Tags != nil {
		c.Tags = make(map[string]string, len(j.Tags))
		for k, v := range j.Tags {
			c.Tags[k] = v
		}
	}
	if j.Error != nil {
		e := *j.Error
		c.Error = &e
	}
	if j.Failure != nil {
		e := *j.Failure
		c.Failure = &e
	}
	c.ShareAccounts = append([]string(nil), j.ShareAccounts...)
	c.PostCopy = append([]Action(nil), j.PostCopy...)
	return &c
}

// ProgressObserved is when ECS reported the job's ProgressPercent and
// Remaining: ProgressTime, or UpdateTime for a record without it.
func (j *Job) ProgressObserved() time.Time {
	if j.ProgressTime.IsZero() {
		return j.UpdateTime
	}
	return j.ProgressTime
}

// EstimateProgress returns the job's progress and time left at now. Polls
// may be many minutes apart, so for a COPYING job with a time left from
// ECS (RemainTime, or the scheduler's estimate from the observed rate) it
// extrapolates ECS's last report linearly: the copy is taken to advance at
// (100-ProgressPercent)/Remaining, from ProgressObserved on. The estimate
// is never below what ECS said and never 100 before ECS says so (it stops
// at 99), and the time left stops at 0 ("any moment now", never overdue).
// estimated is false when the values are ECS's own: another state, no
// time left known, or no time passed since the report.
func (j *Job) EstimateProgress(now time.Time) (percent int32, remaining time.Duration, estimated bool) {
	if j.State != StateCopying {
		return j.ProgressPercent, j.Remaining, false
	}
	return extrapolate(j.ProgressPercent, j.Remaining, now.Sub(j.ProgressObserved()))
}

// extrapolate is EstimateProgress's arithmetic: progress p with r left,
// elapsed later. (replctl repeats these few lines over the API's fields;
// it speaks only the API.)
func extrapolate(p int32, r, elapsed time.Duration) (int32, time.Duration, bool) {
	if r <= 0 || p < 0 || p >= 100 || elapsed <= 0 {
		return p, r, false
	}
	if elapsed >= r {
		return 99, 0, true
	}
	est := p + int32(float64(100-p)*float64(elapsed)/float64(r))
	return min(max(est, p), 99), r - elapsed, true
}

// Route is the source → destination pair, used for rate estimates.
func (j *Job) Route() string { return j.SourceRegion + ">" + j.DestinationRegion }

// Token returns the CopyImage ClientToken for attempt n of job id. It is a
// pure function of both, so a submit retried after a crash sends the same
// token and ECS returns the same copy instead of making a second one.
func Token(id string, attempt int32) string {
	return fmt.Sprintf("rd-%s-a%d", id, attempt)
}

// NewID returns a new job id: "j-" and 26 lowercase base32 characters,
// time-ordered (48 bits of milliseconds, then 80 random bits) so that ids
// sort by creation time.
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var out [26]byte
	var acc uint64
	bits := 0
	i := 0
	for _, c := range b {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[i] = alphabet[(acc>>uint(bits))&31]
			i++
		}
	}
	if bits > 0 {
		out[i] = alphabet[(acc<<uint(5-bits))&31]
	}
	return "j-" + string(out[:])
}

// ValidID reports whether s has the shape of a job id.
func ValidID(s string) bool {
	if len(s) != 28 || !strings.HasPrefix(s, "j-") {
		return false
	}
	for _, c := range s[2:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// Lineage tags put on every copy, so that replicatord can find and adopt the
// copies it made even without its state file.
const (
	TagJobID        = "replicatord:job-id"
	TagSourceImage  = "replicatord:source-image"
	TagSourceRegion = "replicatord:source-region"
	TagPolicy       = "replicatord:policy"
	TagAttempt      = "replicatord:attempt"
	// TagOwner names the installation (daemon.owner) that made the copy.
	// Adoption, lineage lookups and retention consider only copies with
	// this installation's owner; copies made before the tag existed are
	// recognised only through their jobs in the store.
	TagOwner = "replicatord:owner"
)

// DefaultOwner is daemon.owner when the config does not set it.
const DefaultOwner = "replicatord"

// CheckOwner validates an installation name: 1 to 64 printable ASCII
// characters, no spaces (it is a tag value, and RAM policy conditions
// compare it literally).
func CheckOwner(s string) error {
	if s == "" {
		return fmt.Errorf("owner must not be empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("owner is %d characters, more than 64", len(s))
	}
	for _, c := range s {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("owner %q holds %q: only printable ASCII without spaces", s, c)
		}
	}
	return nil
}

// Tombstone marks a (policy, source image, destination region) whose job
// was cancelled: no reconcile copies or adopts it again until the job is
// retried. The store keeps it in the same transaction as the job's cancel
// and checks it in the same transaction as a new job's creation.
type Tombstone struct {
	Policy            string    `json:"policy"`
	SourceImageID     string    `json:"source_image_id"`
	DestinationRegion string    `json:"destination_region"`
	JobID             string    `json:"job_id"`
	By                string    `json:"by,omitempty"`
	Time              time.Time `json:"time"`
}

// TombstoneKey is the key of the pair a policy job copies.
func TombstoneKey(policy, sourceImageID, destinationRegion string) string {
	return policy + "\x00" + sourceImageID + "\x00" + destinationRegion
}

type actorKey struct{}

// WithActor returns ctx saying who asks for a change (for a cancel's
// cancelled_by and tombstone), e.g. "api (unix socket)".
func WithActor(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, actorKey{}, who)
}

// Actor is who WithActor named, or "api".
func Actor(ctx context.Context) string {
	if s, ok := ctx.Value(actorKey{}).(string); ok && s != "" {
		return s
	}
	return "api"
}
