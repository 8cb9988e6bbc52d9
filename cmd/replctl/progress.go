package main

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// Progress between polls. The daemon answers a COPYING job's
// progress_percent and remaining as of its response, extrapolated from
// ECS's last report (observed_progress_percent and observed_remaining at
// progress_time; progress_estimated says so). The live view carries that
// extrapolation on every second until the next change arrives and
// corrects it. It measures the time since the report without comparing
// clocks with the daemon: the daemon's share is observed_remaining -
// remaining (its clock), replctl's the time since it received the job
// (its own).

// extrapolate is internal/job's EstimateProgress arithmetic over the API's
// fields (replctl speaks only the API, so it repeats these few lines; a
// test holds the two equal): progress p with r left, elapsed later, at the
// rate (100-p)/r, never below p, at most 99, the time left never below 0.
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

// liveProgress is a job's progress as shown at one moment.
type liveProgress struct {
	percent   int32
	left      time.Duration
	haveLeft  bool
	estimated bool // percent or left is not ECS's own figure
	// extrapolated: replctl carried the daemon's report on (the daemon
	// sends observed_remaining); otherwise the values are the daemon's as
	// received.
	extrapolated bool
}

// progressAt returns j's progress at now; j was received at recv.
func progressAt(j *replicatorv1.Job, recv, now time.Time) liveProgress {
	lp := liveProgress{percent: j.GetProgressPercent(), estimated: j.GetProgressEstimated()}
	if r := j.GetRemaining(); r != nil {
		lp.left, lp.haveLeft = r.AsDuration(), true
	}
	obs := j.GetObservedRemaining()
	if j.GetState() != replicatorv1.JobState_JOB_STATE_COPYING || j.GetProgressTime() == nil || obs == nil {
		return lp
	}
	elapsed := max(0, now.Sub(recv))
	if j.GetProgressEstimated() && j.GetRemaining() != nil {
		elapsed += obs.AsDuration() - j.GetRemaining().AsDuration()
	}
	p, left, est := extrapolate(j.GetObservedProgressPercent(), obs.AsDuration(), elapsed)
	return liveProgress{percent: max(p, j.GetProgressPercent()), left: left, haveLeft: true,
		estimated: est || j.GetProgressEstimated(), extrapolated: true}
}

// observedPercent is the progress ECS last reported: progress_percent
// unless the daemon marked it as an estimate.
func observedPercent(j *replicatorv1.Job) int32 {
	if j.GetProgressEstimated() {
		return j.GetObservedProgressPercent()
	}
	return j.GetProgressPercent()
}

// observedAt is when ECS reported it: progress_time, or update_time from
// a daemon without it.
func observedAt(j *replicatorv1.Job) *timestamppb.Timestamp {
	if t := j.GetProgressTime(); t != nil {
		return t
	}
	return j.GetUpdateTime()
}

// percentText is a percent in 4 columns, "~" before it when it is an
// estimate that differs from what ECS reported: " 45%", "~47%".
func percentText(p int32, estimated bool, observed int32) string {
	if estimated && p != observed {
		return fmt.Sprintf("%4s", fmt.Sprintf("~%d%%", p))
	}
	return fmt.Sprintf("%3d%%", p)
}
