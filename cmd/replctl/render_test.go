package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

const (
	stQueued     = replicatorv1.JobState_JOB_STATE_QUEUED
	stSubmitting = replicatorv1.JobState_JOB_STATE_SUBMITTING
	stWaiting    = replicatorv1.JobState_JOB_STATE_WAITING
	stCopying    = replicatorv1.JobState_JOB_STATE_COPYING
	stSucceeded  = replicatorv1.JobState_JOB_STATE_SUCCEEDED
	stFailed     = replicatorv1.JobState_JOB_STATE_FAILED
	stCancelling = replicatorv1.JobState_JOB_STATE_CANCELLING
	stCancelled  = replicatorv1.JobState_JOB_STATE_CANCELLED
)

func sampleJobs() []*replicatorv1.Job {
	j5 := sampleJob("j-0005", "ap-southeast-1", stQueued, 0)
	j5.Policy = "nightly"
	j5.NextAttemptTime = ts(45 * time.Second)
	j5.Attempts = 2
	j6 := sampleJob("j-0006", "eu-central-1", stCancelled, 30)
	j6.Policy = "nightly"
	return []*replicatorv1.Job{
		sampleJob("j-0001", "cn-shanghai", stCopying, 45),
		sampleJob("j-0002", "cn-beijing", stWaiting, 0),
		sampleJob("j-0003", "cn-shenzhen", stSucceeded, 100),
		sampleJob("j-0004", "us-west-1", stFailed, 0),
		j5, j6,
	}
}

func TestJobsTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := writeJobsTable(&b, sampleJobs(), testNow); err != nil {
		t.Fatal(err)
	}
	golden(t, "jobs_table", b.Bytes())
}

func TestJobDetailGolden(t *testing.T) {
	j := sampleJob("j-0004", "us-west-1", stFailed, 0)
	j.Tags = map[string]string{"team": "web", "env": "prod"}
	j.Encrypted, j.KmsKeyId = true, "key-123"
	j.DestinationDescription = "nightly\nbuild"
	j.PostCopyActions = []*replicatorv1.PostCopyAction{{Name: "image_family", Done: true}, {Name: "share", Error: "InvalidAccount.NotFound"}}
	var b bytes.Buffer
	if err := writeJobDetail(&b, j, testNow); err != nil {
		t.Fatal(err)
	}
	golden(t, "get_table", b.Bytes())
}

func samplePolicies() *replicatorv1.ListPoliciesResponse {
	return &replicatorv1.ListPoliciesResponse{
		Source: "/etc/replicatord/policies.yaml",
		Policies: []*replicatorv1.Policy{{
			Name: "nightly", Enabled: true, SourceRegion: "cn-hangzhou",
			DestinationRegions: []string{"cn-shanghai", "cn-beijing"},
			Interval:           durationpb.New(15 * time.Minute), MatchedImages: 7,
			LastReconcileTime: ts(-4 * time.Minute), NextReconcileTime: ts(11 * time.Minute),
			JobCounts: []*replicatorv1.JobStateCount{{State: stSucceeded, Count: 12}, {State: stCopying, Count: 2}, {State: stFailed, Count: 0}},
		}, {
			Name: "dr-europe", SourceRegion: "cn-hangzhou", DestinationRegions: []string{"eu-central-1"},
			Interval: durationpb.New(time.Hour), LastError: "DescribeImages: Throttling.User: Request was denied due to user flow control.",
		}},
	}
}

func TestPoliciesTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := writePoliciesTable(&b, samplePolicies(), testNow); err != nil {
		t.Fatal(err)
	}
	golden(t, "policies_table", b.Bytes())
}

func samplePlan() *replicatorv1.PlanPoliciesResponse {
	return &replicatorv1.PlanPoliciesResponse{
		Items: []*replicatorv1.PlanItem{
			{Policy: "nightly", SourceImageId: "m-bp1src0000000000001", SourceImageName: "ubuntu-22.04-base", DestinationRegion: "cn-shanghai", Action: replicatorv1.PlanAction_PLAN_ACTION_COPY, SizeGib: 40},
			{Policy: "nightly", SourceImageId: "m-bp1src0000000000001", SourceImageName: "ubuntu-22.04-base", DestinationRegion: "cn-beijing", Action: replicatorv1.PlanAction_PLAN_ACTION_EXISTS, SizeGib: 40, DestinationImageId: "m-2ze000000000000001"},
			{Policy: "nightly", SourceImageId: "m-bp1src0000000000002", DestinationRegion: "cn-shanghai", Action: replicatorv1.PlanAction_PLAN_ACTION_COPY, SizeGib: 20},
			{Policy: "dr-europe", SourceImageId: "m-bp1src0000000000002", DestinationRegion: "eu-central-1", Action: replicatorv1.PlanAction_PLAN_ACTION_BLOCKED, SizeGib: 20, Reason: "encrypted image: kms_key_id required"},
		},
		CopyGib:           60,
		EstimatedDuration: durationpb.New(14 * time.Minute),
	}
}

func TestPlanTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := writePlanTable(&b, samplePlan()); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan_table", b.Bytes())
	if !strings.HasSuffix(b.String(), "2 copies, 60 GiB, est. 14m\n") {
		t.Errorf("summary line missing: %q", b.String())
	}
}

func TestPlainLinesGolden(t *testing.T) {
	var b strings.Builder
	for _, j := range sampleJobs() {
		b.WriteString(plainLine(j) + "\n")
	}
	golden(t, "plain_lines", []byte(b.String()))
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if f := strings.Fields(l); len(f) < 7 || !strings.HasSuffix(f[5], "%") {
			t.Errorf("plain line does not have the 7 fixed fields: %q", l)
		}
	}
}

func TestJSONLinesGolden(t *testing.T) {
	var b bytes.Buffer
	for _, j := range sampleJobs()[:2] {
		if err := printMessage(&b, "json", &replicatorv1.WatchResponse{Revision: j.Revision, Job: j}); err != nil {
			t.Fatal(err)
		}
	}
	if err := printMessage(&b, "json", &replicatorv1.WatchResponse{Revision: 42, SnapshotComplete: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "json_lines", b.Bytes())
	if n := strings.Count(b.String(), "\n"); n != 3 {
		t.Errorf("want 3 lines (one object each), got %d", n)
	}
}

func TestYAMLGolden(t *testing.T) {
	var b bytes.Buffer
	j := sampleJob("j-0004", "us-west-1", stFailed, 0)
	j.Tags = map[string]string{"build": "true"}
	if err := printMessage(&b, "yaml", j); err != nil {
		t.Fatal(err)
	}
	golden(t, "get_yaml", b.Bytes())
	// A string that reads as another YAML type must stay a string.
	if !strings.Contains(b.String(), `build: "true"`) {
		t.Errorf("tag value \"true\" lost its quotes:\n%s", b.String())
	}
}

// liveJobs returns tracked jobs whose progress was observed at known times,
// so the ETA in the frame is deterministic.
func liveJobs() []*trackedJob {
	tr := newTracker()
	copying := sampleJob("j-0001", "cn-shanghai", stCopying, 0)
	for i, p := range []int32{10, 20, 30, 45} { // 10% a minute, then 15%
		c := proto.Clone(copying).(*replicatorv1.Job)
		c.ProgressPercent = p
		c.UpdateTime = ts(time.Duration(i-3) * time.Minute)
		tr.update(c, testNow)
	}
	for _, j := range sampleJobs()[1:] {
		tr.update(j, testNow)
	}
	slow := sampleJob("j-0007", "me-east-1", stCopying, 5) // only the server's estimate so far
	slow.SourceImageId, slow.SourceImageName = "m-bp1src0000000000002", "centos-7"
	tr.update(slow, testNow)
	for i := range 7 {
		s := sampleJob("j-01"+string(rune('0'+i)), "cn-qingdao", stSucceeded, 100)
		s.Policy = "nightly"
		tr.update(s, testNow)
	}
	c := sampleJob("j-0201", "eu-west-1", stCancelling, 60)
	c.Policy = "nightly"
	tr.update(c, testNow)
	return tr.list()
}

func TestLiveFrameGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    viewOptions
	}{
		{"live_policy_w120", viewOptions{width: 120, groupBy: groupByPolicy}},
		{"live_image_w100", viewOptions{width: 100, groupBy: groupByImage}},
		{"live_policy_w80", viewOptions{width: 80, groupBy: groupByPolicy}},
		{"live_narrow_w60", viewOptions{width: 60, groupBy: groupByPolicy, status: "connection lost; reconnecting from revision 42"}},
		{"live_short_h8", viewOptions{width: 120, height: 8, groupBy: groupByPolicy}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := renderFrame(liveJobs(), testNow, tc.o)
			for _, l := range lines {
				if n := len([]rune(l)); n > tc.o.width-1 {
					t.Errorf("line of %d runes exceeds width %d-1: %q", n, tc.o.width, l)
				}
			}
			if tc.o.height > 0 && len(lines) > tc.o.height-1 {
				t.Errorf("frame of %d lines exceeds height %d-1", len(lines), tc.o.height)
			}
			golden(t, tc.name, []byte(strings.Join(lines, "\n")+"\n"))
		})
	}
}

func TestLiveFrameContent(t *testing.T) {
	frame := strings.Join(renderFrame(liveJobs(), testNow, viewOptions{width: 120}), "\n")
	for _, want := range []string{
		"ad hoc", "policy nightly",
		"COPYING", "█", "45%", "Creating",
		"ETA 4m47s", // 10%/min, then 15%/min, smoothed: 11.5%/min → 55% left ≈ 4m47s
		"retry 45s", // queued job waiting for its next attempt
		"✗ QuotaExceed.Image: The image quota",
		"✓ 1 succeeded, ✗ 1 failed", "✓ 7 succeeded, 1 cancelled",
	} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q:\n%s", want, frame)
		}
	}
	if strings.Contains(frame, "cn-shenzhen") || strings.Contains(frame, "cn-qingdao") {
		t.Errorf("succeeded jobs should collapse into the summary line:\n%s", frame)
	}
}

func TestFailedJobsCapped(t *testing.T) {
	tr := newTracker()
	for i := range 8 {
		tr.update(sampleJob("j-f"+string(rune('a'+i)), "r"+string(rune('a'+i)), stFailed, 0), testNow)
	}
	lines := renderFrame(tr.list(), testNow, viewOptions{width: 120})
	if n := strings.Count(strings.Join(lines, "\n"), "✗ QuotaExceed"); n != maxFailedShown {
		t.Errorf("listed %d failed jobs, want %d", n, maxFailedShown)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "✗ 8 failed (3 failed not listed)") {
		t.Errorf("summary = %q", last)
	}
}

func TestEstimator(t *testing.T) {
	var e estimator
	if _, ok := e.eta(testNow, 0, false); ok {
		t.Fatal("ETA without observations or fallback")
	}
	if d, ok := e.eta(testNow, 5*time.Minute, true); !ok || d != 5*time.Minute {
		t.Fatalf("fallback ETA = %v %v, want the job's remaining", d, ok)
	}
	e.observe(10, testNow)
	e.observe(10, testNow.Add(30*time.Second)) // stall: keeps the first sample
	e.observe(20, testNow.Add(time.Minute))    // 10% per minute overall
	d, _ := e.eta(testNow.Add(time.Minute), 0, false)
	if d != 8*time.Minute {
		t.Errorf("ETA = %v, want 8m (80%% at 10%%/min)", d)
	}
	d, _ = e.eta(testNow.Add(3*time.Minute), 0, false)
	if d != 6*time.Minute {
		t.Errorf("ETA two minutes later = %v, want 6m (counts down between samples)", d)
	}
	e.observe(5, testNow.Add(4*time.Minute)) // a new attempt: back to 0
	if e.rate != 0 || e.lastP != 5 {
		t.Errorf("progress going back must reset the estimator, got %+v", e)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 59 * time.Second: "59s", 61 * time.Second: "1m01s", 10 * time.Minute: "10m",
		2*time.Hour + 5*time.Minute: "2h05m", 50 * time.Hour: "2d2h", -time.Second: "0s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
