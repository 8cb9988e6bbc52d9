package server

import (
	"context"
	"slices"
	"sync"

	"github.com/replicatord/replicatord/internal/cloud"
)

// sourceLookup batches the Copy RPC's source lookups: concurrent lookups
// in one region share DescribeImages calls of up to
// cloud.MaxIDsPerDescribe ids. It adds no delay: a lookup that finds no
// call in flight for its region sends one at once; lookups that arrive
// while it runs wait for it and then go out together (group commit, as
// the store's writer does with transactions). A fleet of 200 Copy RPCs
// thus costs about three calls instead of 200.
type sourceLookup struct {
	cloud cloud.Provider

	mu      sync.Mutex
	regions map[string]*lookupRegion
}

// lookupRegion is one region's pending lookups and whether a call is out.
type lookupRegion struct {
	busy    bool
	pending []*lookupWait
}

// lookupWait is one caller's id and, once answered, its result.
type lookupWait struct {
	ctx  context.Context
	id   string
	done chan struct{}
	img  cloud.Image
	ok   bool
	err  error
}

func newSourceLookup(p cloud.Provider) *sourceLookup {
	return &sourceLookup{cloud: p, regions: map[string]*lookupRegion{}}
}

// sourceStatuses is every status a source may have (a Deprecated image is
// found, then refused as not Available, with a clear message).
var sourceStatuses = append(slices.Clone(cloud.AllStatuses), cloud.StatusDeprecated)

// lookup returns the account's own custom image id in region (ok false
// when ECS does not list it).
func (l *sourceLookup) lookup(ctx context.Context, region, id string) (cloud.Image, bool, error) {
	w := &lookupWait{ctx: ctx, id: id, done: make(chan struct{})}
	l.mu.Lock()
	r := l.regions[region]
	if r == nil {
		r = &lookupRegion{}
		l.regions[region] = r
	}
	r.pending = append(r.pending, w)
	lead := !r.busy
	r.busy = true
	l.mu.Unlock()
	if lead {
		l.run(region, r)
	}
	select {
	case <-w.done:
		return w.img, w.ok, w.err
	case <-ctx.Done():
		return cloud.Image{}, false, ctx.Err()
	}
}

// run sends the region's pending lookups, 100 ids per call, until none is
// left. The caller that found the region idle runs it; its own lookup is
// in the first batch, so it never waits for other callers' batches
// longer than they waited for it.
func (l *sourceLookup) run(region string, r *lookupRegion) {
	for {
		l.mu.Lock()
		n := min(len(r.pending), cloud.MaxIDsPerDescribe)
		if n == 0 {
			r.busy = false
			delete(l.regions, region)
			l.mu.Unlock()
			return
		}
		batch := r.pending[:n:n]
		r.pending = r.pending[n:]
		l.mu.Unlock()
		l.send(region, batch)
	}
}

// send makes one DescribeImages call for a batch and answers each caller.
// The call runs under the first live caller's context: a batch whose
// callers have all gone is not sent.
func (l *sourceLookup) send(region string, batch []*lookupWait) {
	var ctx context.Context
	ids := make([]string, 0, len(batch))
	for _, w := range batch {
		if w.ctx.Err() != nil {
			continue
		}
		if ctx == nil {
			ctx = w.ctx
		}
		if !slices.Contains(ids, w.id) {
			ids = append(ids, w.id)
		}
	}
	var imgs []cloud.Image
	var err error
	if ctx != nil {
		// Not cancelled by the first caller alone: the others still wait.
		ctx = context.WithoutCancel(ctx)
		imgs, err = l.cloud.DescribeImages(ctx, cloud.ImageQuery{Region: region, IDs: ids, OwnerAlias: "self", Statuses: sourceStatuses})
	}
	for _, w := range batch {
		w.err = err
		for _, im := range imgs {
			if im.ID == w.id {
				w.img, w.ok = im, true
				break
			}
		}
		close(w.done)
	}
}
