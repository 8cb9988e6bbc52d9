package state

import (
	"fmt"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
)

// Options tune a store. The zero value is the recommended configuration.
type Options struct {
	// LockTimeout bounds the wait for the file lock, so that a second
	// daemon on the same file fails quickly instead of hanging. Default 1s.
	LockTimeout time.Duration
	// HistoryLimit is how many of the newest events are kept for Watch.
	// Default 10000.
	HistoryLimit int
	// MaxBatchDelay is how long the writer waits for more updates to group
	// into a transaction once it has one. Default 0: updates that arrive
	// while a commit is in flight form the next batch, which already groups
	// concurrent updates without delaying a lone one.
	MaxBatchDelay time.Duration
	// MaxBatchSize caps the updates in one transaction. Default 1000.
	MaxBatchSize int
	// WatchBuffer is the capacity of each watcher's channel: a live watcher
	// whose client lets it fill is dropped. Default 1024.
	WatchBuffer int
	// Clock sets UpdateTime and default CreateTime. Default clock.Real.
	// Batching uses real time whatever the clock, so a fake clock in tests
	// never stalls a commit.
	Clock clock.Clock
	// OnCorrupt, when set, is called once per record (bucket/key) found not
	// to decode by a read that then skips it (List, Active, Watch,
	// CreateRequest, Scan), e.g. to log it and count it in a metric. It
	// runs inside a read or write transaction: it must be quick and must
	// not call the store.
	OnCorrupt func(key string, err error)
}

const (
	defaultLockTimeout  = time.Second
	defaultHistoryLimit = 10000
	defaultMaxBatchSize = 1000
	defaultWatchBuffer  = 1024
	// compactSlack bounds the extra events one transaction deletes beyond
	// the ones it added.
	compactSlack = 1024
)

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.LockTimeout < 0:
		return o, errdefs.Invalid("LockTimeout", "must not be negative, got %s", o.LockTimeout)
	case o.HistoryLimit < 0:
		return o, errdefs.Invalid("HistoryLimit", "must not be negative, got %d", o.HistoryLimit)
	case o.MaxBatchDelay < 0:
		return o, errdefs.Invalid("MaxBatchDelay", "must not be negative, got %s", o.MaxBatchDelay)
	case o.MaxBatchSize < 0:
		return o, errdefs.Invalid("MaxBatchSize", "must not be negative, got %d", o.MaxBatchSize)
	case o.WatchBuffer < 0:
		return o, errdefs.Invalid("WatchBuffer", "must not be negative, got %d", o.WatchBuffer)
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = defaultLockTimeout
	}
	if o.HistoryLimit == 0 {
		o.HistoryLimit = defaultHistoryLimit
	}
	if o.MaxBatchSize == 0 {
		o.MaxBatchSize = defaultMaxBatchSize
	}
	if o.WatchBuffer == 0 {
		o.WatchBuffer = defaultWatchBuffer
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	return o, nil
}

func (o Options) String() string {
	return fmt.Sprintf("{LockTimeout:%s HistoryLimit:%d MaxBatchDelay:%s MaxBatchSize:%d WatchBuffer:%d}",
		o.LockTimeout, o.HistoryLimit, o.MaxBatchDelay, o.MaxBatchSize, o.WatchBuffer)
}
