package scheduler

import (
	"log/slog"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/job"
)

// Options configure a Scheduler; zero values take the defaults below.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// SlotsPerRegion is the ECS copy quota per destination region (5).
	SlotsPerRegion int
	// RegionSlots overrides SlotsPerRegion for some regions.
	RegionSlots map[string]int
	// Lookahead is how many copies beyond the slots may be submitted per
	// region, held by ECS as Waiting (0 here; the config file's default is
	// 30). Within it, LookaheadTime decides how many are (see wantMore).
	Lookahead int
	// LookaheadTime is how long a copy may be expected to wait at ECS for
	// a slot before it is submitted (40m here; the config file's default is
	// 15m): it bounds how long a copy of a higher priority, submitted later,
	// waits behind ones ECS holds.
	LookaheadTime time.Duration
	// DetectLag is how soon after a copy's expected end a poll comes to
	// see it (30m), at most: while jobs are queued a poll comes seven
	// eighths of it after the first end it is for, and sees the ends up
	// to then; near a region's end, sooner (planPoll).
	DetectLag time.Duration
	// Workers bounds concurrent steps (16).
	Workers int
	// MaxAttempts bounds how many copies are made for one job when ECS
	// reports CreateFailed (3).
	MaxAttempts int
	// MaxRetries bounds transient failures (5xx, timeouts, throttling) of one
	// step before the job fails (10).
	MaxRetries int
	// RetryBase and RetryMax shape the per-job exponential backoff (1s, 2m).
	RetryBase, RetryMax time.Duration
	// QuotaWait is how long a job waits after QuotaExceed.Image (1m).
	QuotaWait time.Duration
	// PollMin and PollMax bound the adaptive poll interval (1s, 10m).
	PollMin, PollMax time.Duration
	// APIRate is the ceiling of calls per second per ECS action (13, below
	// the documented 1000 per 60 s).
	APIRate float64
	// CopyConflict: the account refuses concurrent copies of one source
	// image (OperationDenied.ImageCopyConflict). Also switched on by itself
	// the first time ECS answers that code.
	CopyConflict bool
	// VanishGrace is how long after CopyImage a copy may be missing from
	// DescribeImages before it counts as gone (ECS lists new copies with
	// some delay) (2m).
	VanishGrace time.Duration
	// CallTimeout bounds one ECS call (30s).
	CallTimeout time.Duration
	// Observer receives events for metrics; nil for none.
	Observer Observer
	// Owner is this installation's name (daemon.owner), written on every
	// copy as the tag replicatord:owner; default job.DefaultOwner.
	Owner string
}

// Observer is told what happens, for metrics. Methods must not block.
type Observer interface {
	CopyFinished(route string, d time.Duration)
	Throttled(action string)
	RegionLoad(region string, queued, inFlight int)
	Transition(from, to string)
	// CancelRetry: a cancel (or the cleanup of a copy) will be tried again;
	// code is the ECS error code that stopped it.
	CancelRetry(code string)
	// Refused: an ECS call that changes an image was not sent because the
	// store does not prove the image is ours.
	Refused(action string)
}

func (o *Options) setDefaults() {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.SlotsPerRegion, 5)
	if o.Lookahead < 0 {
		o.Lookahead = 0
	}
	def(&o.Workers, 16)
	def(&o.MaxAttempts, 3)
	def(&o.MaxRetries, 10)
	defd(&o.RetryBase, time.Second)
	defd(&o.RetryMax, 2*time.Minute)
	defd(&o.QuotaWait, time.Minute)
	defd(&o.PollMin, time.Second)
	defd(&o.PollMax, 10*time.Minute)
	defd(&o.LookaheadTime, 40*time.Minute)
	defd(&o.DetectLag, 30*time.Minute)
	defd(&o.CallTimeout, 30*time.Second)
	defd(&o.VanishGrace, 2*time.Minute)
	if o.Owner == "" {
		o.Owner = job.DefaultOwner
	}
	if o.APIRate <= 0 {
		o.APIRate = 13
	}
}

// inECSMax is how many copies admission lets a region have in ECS at
// once: its slots and Lookahead Waiting beyond them.
func (o *Options) inECSMax(region string) int {
	return o.slots(region) + o.Lookahead
}

func (o *Options) slots(region string) int {
	if n, ok := o.RegionSlots[region]; ok && n > 0 {
		return n
	}
	return o.SlotsPerRegion
}
