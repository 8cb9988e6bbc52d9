package scheduler

import (
	"time"

	"github.com/replicatord/replicatord/internal/job"
)

// Overdue returns, per destination region, how far the copy most past its
// expected end has run over it: expected end is when the copy was first
// seen Creating plus the route's learned copy time for its size (the same
// estimate that orders the queue). Regions without a copy past its end are
// left out. A copy still Waiting at ECS has no expected end yet. It is for
// the "copy stuck" alert, whose threshold absorbs the estimate's error.
func (s *Scheduler) Overdue() map[string]time.Duration {
	type running struct {
		j     *job.Job
		start time.Time
	}
	s.mu.Lock()
	var rs []running
	for id, j := range s.live {
		if j.State != job.StateCopying {
			continue
		}
		if t, ok := s.started[id]; ok {
			rs = append(rs, running{j, t})
		}
	}
	s.mu.Unlock()
	now := s.opts.Clock.Now()
	out := map[string]time.Duration{}
	for _, r := range rs {
		over := now.Sub(r.start.Add(s.est.duration(r.j)))
		if over > 0 && over > out[r.j.DestinationRegion] {
			out[r.j.DestinationRegion] = over
		}
	}
	return out
}
