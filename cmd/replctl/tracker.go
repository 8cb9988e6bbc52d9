package main

import (
	"sort"
	"time"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// trackedJob is the latest version of a job plus what its progress on
// screen is computed from.
type trackedJob struct {
	job  *replicatorv1.Job
	recv time.Time // when job arrived, in replctl's clock
	est  estimator
	// floor is the highest percent shown of this run of the copy: a bar
	// never moves back on screen because the daemon's report came in
	// below the extrapolation; only when ECS's own figure goes down (or a
	// new attempt starts) does it start again from there.
	floor int32
}

// progress is the job's progress on screen at now.
func (tj *trackedJob) progress(now time.Time) liveProgress {
	lp := progressAt(tj.job, tj.recv, now)
	if tj.job.GetState() == replicatorv1.JobState_JOB_STATE_COPYING && lp.percent < tj.floor {
		lp.percent, lp.estimated = tj.floor, true
	}
	return lp
}

// tracker keeps the latest version of every job a stream has shown.
type tracker struct {
	jobs map[string]*trackedJob
}

func newTracker() *tracker { return &tracker{jobs: map[string]*trackedJob{}} }

// update records a new version of a job, received at now. Older revisions
// (possible when a resumed watch replays) are ignored.
func (t *tracker) update(j *replicatorv1.Job, now time.Time) {
	tj := t.jobs[j.GetId()]
	if tj == nil {
		tj = &trackedJob{}
		t.jobs[j.GetId()] = tj
	} else if j.GetRevision() != 0 && j.GetRevision() < tj.job.GetRevision() {
		return
	}
	newAttempt := tj.job != nil && j.GetAttempts() != tj.job.GetAttempts()
	if newAttempt {
		tj.est = estimator{} // a new attempt starts from 0%
	}
	copying := j.GetState() == replicatorv1.JobState_JOB_STATE_COPYING
	switch {
	case tj.job == nil:
	case newAttempt || !copying || tj.job.GetState() != replicatorv1.JobState_JOB_STATE_COPYING || observedPercent(j) < observedPercent(tj.job):
		tj.floor = 0
	default:
		tj.floor = max(tj.floor, tj.progress(now).percent)
	}
	if copying {
		at := now
		if t := observedAt(j); t != nil {
			at = t.AsTime()
		}
		tj.est.observe(observedPercent(j), at)
	}
	tj.job, tj.recv = j, now
}

// list returns the tracked jobs ordered by id (ids are time-ordered).
func (t *tracker) list() []*trackedJob {
	out := make([]*trackedJob, 0, len(t.jobs))
	for _, tj := range t.jobs {
		out = append(out, tj)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].job.GetId() < out[b].job.GetId() })
	return out
}

// ids returns the tracked job ids in order.
func (t *tracker) ids() []string {
	var ids []string
	for _, tj := range t.list() {
		ids = append(ids, tj.job.GetId())
	}
	return ids
}

// allTerminal reports whether there is at least one job and all are final.
func (t *tracker) allTerminal() bool {
	for _, tj := range t.jobs {
		if !terminal(tj.job.GetState()) {
			return false
		}
	}
	return len(t.jobs) > 0
}

// count returns how many tracked jobs are in state s.
func (t *tracker) count(s replicatorv1.JobState) int {
	n := 0
	for _, tj := range t.jobs {
		if tj.job.GetState() == s {
			n++
		}
	}
	return n
}
