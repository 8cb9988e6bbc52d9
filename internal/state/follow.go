package state

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// The watch-resume protocol, on top of Store.Watch, that the API's Copy
// and Watch streams follow: a client gets a snapshot (Snapshot) and then
// every change after it (Follow), and a watcher that falls behind is
// resumed where it was without the client noticing. A Watch ends when its
// buffer fills (errdefs.ErrAborted); Follow starts a new one from the last
// revision it saw, so the client still gets every change once, in order.

// FollowOptions say what Follow streams and when it ends.
type FollowOptions struct {
	// Filter chooses the jobs; From is the revision to stream after.
	Filter Filter
	From   int64
	// Seen holds the revision already sent per job, e.g. the changed jobs
	// of a Snapshot: an event at or below it is skipped, so a client never
	// sees a job go back. nil for none. Follow deletes a job's entry once
	// an event at or above it has passed (events come in revision order, so it
	// can skip nothing more): the map only shrinks, and a long stream
	// holds no per-job state.
	Seen map[string]int64
	// Done, when set, reports a job that has reached what the caller waits
	// for; Follow returns nil once Want distinct jobs have (Want 0: never).
	Done func(*job.Job) bool
	Want int
	// Stop, when closed, ends Follow with errdefs.ErrUnavailable naming the
	// revision to resume from (a daemon shutting down must not wait for its
	// streams).
	Stop <-chan struct{}
	// Resumed, when set, is told each time a fallen-behind watch is
	// resumed, from which revision and why.
	Resumed func(from int64, reason error)
	// Current, with Filter.IDs, first sends every one of those jobs as it
	// is now, read at one revision and in revision order, then the changes
	// after that revision (From is ignored): a job with no change left to
	// come (finished, or reused from an earlier request) is still sent, a
	// job already Done counts towards Want, and the stream's revisions only
	// increase. A job that does not exist or does not decode is an error.
	Current bool
}

// Follow streams to send every change of the jobs matching o.Filter after
// o.From, resuming the store's watch whenever it falls behind, until the
// context ends (its error), send fails (that error), o.Done is satisfied
// (nil), o.Stop is closed, or the store ends the watch for good (its
// error: compacted history is ErrOutOfRange, a closed store ErrUnavailable).
func Follow(ctx context.Context, s Store, o FollowOptions, send func(rev int64, j *job.Job) error) error {
	finished := map[string]bool{}
	last := o.Seen
	if last == nil {
		last = map[string]int64{}
	}
	from := o.From
	if o.Current {
		var (
			done bool
			err  error
		)
		if from, done, err = sendCurrent(ctx, s, o, last, finished, send); done || err != nil {
			return err
		}
	}
	for {
		w, err := s.Watch(ctx, from)
		if err != nil {
			return err
		}
		done, err := followOnce(w, o, last, finished, &from, send)
		if done {
			w.Close()
			return err
		}
		err = w.Err()
		w.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			return fmt.Errorf("watch ended: %w", errdefs.ErrUnavailable)
		}
		if o.Resumed != nil {
			o.Resumed(from, err)
		}
	}
}

// sendCurrent sends the jobs of o.Filter.IDs as they are now (see
// FollowOptions.Current) and returns the revision they were read at; done
// reports that o.Want jobs are already Done.
func sendCurrent(ctx context.Context, s Store, o FollowOptions, last map[string]int64, finished map[string]bool, send func(int64, *job.Job) error) (rev int64, done bool, err error) {
	ids := o.Filter.IDs
	now, _, rev, err := s.List(ctx, Filter{IDs: ids}, len(ids), "")
	if err != nil {
		return 0, false, err
	}
	if len(now) < len(ids) {
		// List skips a record that does not decode: Get names it.
		for _, id := range ids {
			if _, err := s.Get(ctx, id); err != nil {
				return 0, false, err
			}
		}
	}
	slices.SortFunc(now, func(a, b *job.Job) int { return cmp.Compare(a.Revision, b.Revision) })
	for _, j := range now {
		if !o.Filter.Match(j) {
			continue
		}
		last[j.ID] = j.Revision
		if err := send(j.Revision, j); err != nil {
			return 0, false, err
		}
		if o.Done != nil && o.Done(j) {
			finished[j.ID] = true
		}
	}
	return rev, o.Want > 0 && len(finished) >= o.Want, nil
}

// followOnce sends the events of one watch; done reports that Follow is
// over (with err), as opposed to the watch having ended.
func followOnce(w Watcher, o FollowOptions, last map[string]int64, finished map[string]bool, from *int64, send func(int64, *job.Job) error) (done bool, err error) {
	events := w.Events()
	for {
		var ev Event
		select {
		case <-o.Stop:
			// Streams would hold a graceful stop for its whole grace
			// period: end them; clients resume from the revision.
			return true, fmt.Errorf("replicatord is shutting down; resume with from_revision %d: %w", *from, errdefs.ErrUnavailable)
		case e, ok := <-events:
			if !ok {
				return false, nil
			}
			ev = e
		}
		*from = ev.Revision
		j := ev.Job
		if !o.Filter.Match(j) {
			continue
		}
		if r, ok := last[j.ID]; ok {
			if r <= ev.Revision {
				delete(last, j.ID) // every later event is above r
			}
			if r >= ev.Revision {
				continue
			}
		}
		if err := send(ev.Revision, j); err != nil {
			return true, err
		}
		if o.Done != nil && o.Done(j) {
			finished[j.ID] = true
			if o.Want > 0 && len(finished) >= o.Want {
				return true, nil
			}
		}
	}
}

// snapshotPage is how many jobs Snapshot reads per List page: one page
// is all it holds in memory at a time (a variable so tests can page small).
var snapshotPage = 256

// Snapshot sends every job matching f, newest first, each with the
// snapshot's revision, reading the store a
// page at a time, so its memory does not grow with the number of jobs.
// It returns the revision to follow from (taken before the first page)
// and the jobs that were read at a revision above it, with that revision:
// the only ones a Follow from rev (with Seen set to changed) could repeat
// or send backwards, since each page is read at a later revision than the
// last. changed holds the jobs changed while the snapshot ran, not every
// job. Jobs created meanwhile sort before the first page and are left to
// Follow; a job removed by retention meanwhile is simply not sent.
//
// With f.IDs, each job is read with Get (an unknown id is an error) and
// sent when it matches the rest of f.
func Snapshot(ctx context.Context, s Store, f Filter, send func(rev int64, j *job.Job) error) (rev int64, changed map[string]int64, err error) {
	rev = s.Revision()
	changed = map[string]int64{}
	emit := func(j *job.Job) error {
		if j.Revision > rev {
			changed[j.ID] = j.Revision
		}
		return send(rev, j)
	}
	if len(f.IDs) > 0 {
		for _, id := range f.IDs {
			j, err := s.Get(ctx, id)
			if err != nil {
				return 0, nil, err
			}
			if f.Match(j) {
				if err := emit(j); err != nil {
					return 0, nil, err
				}
			}
		}
		return rev, changed, nil
	}
	token := ""
	for {
		jobs, next, _, err := s.List(ctx, f, snapshotPage, token)
		if err != nil {
			return 0, nil, err
		}
		for i, j := range jobs {
			jobs[i] = nil // let a sent job go while the page is sent
			if err := emit(j); err != nil {
				return 0, nil, err
			}
		}
		if next == "" {
			return rev, changed, nil
		}
		token = next
	}
}
