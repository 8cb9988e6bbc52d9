package main

import "time"

// The usual tools, driven against the ECS model (model.go). Each is a
// faithful reading of the tool's code path for image copies, reduced to the
// calls it makes and when:
//
// Terraform, resource alicloud_image_copy (terraform-provider-alicloud,
// resource_alicloud_image_copy.go): terraform runs `parallelism` (10)
// resources at a time. Create sends CopyImage, then waits with the SDK's
// StateChangeConf{Delay: 1m, MinTimeout: 3s, Timeout: 10m}: the first
// DescribeImages after the delay, the next ones after 3 s, 6 s, then every
// 10 s (the SDK doubles the wait and clamps it to [MinTimeout, 10 s]). After
// the create timeout the resource fails; the copy is NOT cancelled (the
// provider's cancel code is commented out) and keeps running in ECS.
// Throttled calls are retried (after 3 s, growing by 5 s, as the provider's
// retry helpers do); a throttled DescribeImages simply counts as a poll.
//
// Packer is not modeled: it runs for real (peers.go), since it makes about
// one call per copy.

// terraformParams shape the Terraform pattern.
type terraformParams struct {
	Parallelism   int
	Delay         time.Duration
	MinTimeout    time.Duration
	MaxWait       time.Duration
	CreateTimeout time.Duration
}

var defaultTerraform = terraformParams{Parallelism: 10, Delay: time.Minute, MinTimeout: 3 * time.Second, MaxWait: 10 * time.Second, CreateTimeout: 10 * time.Minute}

// modelRun is what a modeled tool run produced.
type modelRun struct {
	// Makespan is from the first call to the last copy the tool saw
	// Available (or gave up on).
	Makespan time.Duration
	// ECSDone is when ECS finished the last copy it accepted.
	ECSDone                     time.Duration
	Succeeded                   int
	Failed, FailedThrottle      int
	FailedTimeout, FailedDenied int
	Calls                       map[string]map[string]int64
}

type copyTask struct {
	im     fleetImage
	region string
}

func tasksOf(f *fleet) []copyTask {
	var ts []copyTask
	for _, im := range f.Images {
		for _, r := range f.Regions {
			ts = append(ts, copyTask{im, r})
		}
	}
	return ts
}

// runTerraform models `terraform apply` of one alicloud_image_copy per
// image and region, in configuration order.
func runTerraform(f *fleet, p terraformParams, perMinute float64) modelRun {
	s := &sim{}
	m := newECSModel(s, f, perMinute)
	out := modelRun{}
	tasks := tasksOf(f)
	next := 0
	var startOne func()
	finish := func(ok bool, why string) {
		out.Makespan = max(out.Makespan, s.now)
		if ok {
			out.Succeeded++
		} else {
			out.Failed++
			switch why {
			case codeThrottle:
				out.FailedThrottle++
			case codeConflict:
				out.FailedDenied++
			default:
				out.FailedTimeout++
			}
		}
		startOne()
	}
	startOne = func() {
		if next >= len(tasks) {
			return
		}
		t := tasks[next]
		next++
		retries := 0
		var create func()
		create = func() {
			c, code := m.copyImage(t.im, t.region)
			switch code {
			case codeThrottle:
				retries++
				s.at(s.now+3*time.Second+time.Duration(retries-1)*5*time.Second, create)
				return
			case codeConflict:
				finish(false, codeConflict)
				return
			}
			deadline := s.now + p.CreateTimeout
			done := false
			s.at(deadline, func() {
				if !done {
					done = true
					finish(false, "timeout")
				}
			})
			wait := 100 * time.Millisecond
			var poll func()
			poll = func() {
				if done {
					return
				}
				if st, ok := m.describe(c); ok && st == "Available" {
					done = true
					finish(true, "")
					return
				}
				wait *= 2
				if wait < p.MinTimeout {
					wait = p.MinTimeout
				} else if wait > p.MaxWait {
					wait = p.MaxWait
				}
				s.at(s.now+wait, poll)
			}
			s.at(s.now+p.Delay, poll)
		}
		create()
	}
	for i := 0; i < p.Parallelism; i++ {
		startOne()
	}
	s.run()
	out.Calls = m.calls
	for _, c := range m.copies {
		out.ECSDone = max(out.ECSDone, c.end)
	}
	return out
}
