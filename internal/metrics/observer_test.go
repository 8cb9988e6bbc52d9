package metrics

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/job"
)

// schedulerObserver mirrors scheduler.Observer, so a change there that
// breaks the fit shows up here without importing the scheduler.
type schedulerObserver interface {
	CopyFinished(route string, d time.Duration)
	Throttled(action string)
	RegionLoad(region string, queued, inFlight int)
	Transition(from, to string)
}

var _ schedulerObserver = (*Metrics)(nil)

func TestObserverMethods(t *testing.T) {
	m := New()
	var o schedulerObserver = m
	o.CopyFinished("cn-hangzhou>eu-central-1", 10*time.Minute)
	o.CopyFinished("garbage", time.Minute)
	o.Throttled("CopyImage")
	o.RegionLoad("eu-central-1", 4, 2)
	o.Transition(job.StateWaiting.String(), job.StateCopying.String())
	m.ObserveTransition(job.StateWaiting, job.StateCopying) // same series

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	fams := scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels L
		want   float64
	}{
		{"replicatord_copy_duration_seconds", L{"source_region": "cn-hangzhou", "destination_region": "eu-central-1"}, 1},
		{"replicatord_copy_duration_seconds", L{"source_region": "unknown", "destination_region": "garbage"}, 1},
		{"replicatord_ecs_throttles_total", L{"action": "CopyImage"}, 1},
		{"replicatord_queue_depth", L{"region": "eu-central-1"}, 4},
		{"replicatord_copy_slots_in_use", L{"region": "eu-central-1"}, 2},
		{"replicatord_job_transitions_total", L{"from": "waiting", "to": "copying"}, 2},
	} {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	var nilM *Metrics
	nilM.CopyFinished("a>b", time.Second)
	nilM.Throttled("x")
	nilM.RegionLoad("r", 1, 1)
	nilM.Transition("a", "b")
}
