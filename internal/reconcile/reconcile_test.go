package reconcile

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func src(id, name string, day int, tags map[string]string) cloud.Image {
	return cloud.Image{ID: id, Region: "cn-hangzhou", Name: name, Status: cloud.StatusAvailable, SizeGiB: 40,
		CreationTime: t0.AddDate(0, 0, -30+day), Tags: tags, Family: "golden"}
}

var golden = map[string]string{"role": "golden"}

func parse(t *testing.T, policies string) *policy.File {
	t.Helper()
	f, err := policy.Parse("p.yaml", []byte("version: 1\npolicies:\n"+policies))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

const goldenPolicy = `  - name: golden
    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai, {region: cn-beijing, encrypted: true}]
    copy: {name: "{{.SourceName}}-{{.DestinationRegion}}", image_family: inherit, share_with_accounts: ["123"], tags: {team: p}}
    priority: 3
`

type run struct {
	policy string
	err    error
}

// harness runs a Reconciler on a fake clock and reports every run.
type harness struct {
	t      *testing.T
	r      *Reconciler
	cloud  *fakeCloud
	jobs   *fakeJobs
	clk    *clock.Fake
	runs   chan run
	tries  chan run // retries of failing destinations alone
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, c *fakeCloud, f *policy.File) *harness {
	t.Helper()
	h := &harness{t: t, cloud: c, jobs: newFakeJobs(), clk: clock.NewFake(t0), runs: make(chan run, 100), done: make(chan struct{}),
		tries: make(chan run, 100)}
	h.jobs.cloud = c
	h.r = New(c, h.jobs, Options{Clock: h.clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnRun:      func(p string, err error, _ time.Duration) { h.runs <- run{p, err} },
		AfterRetry: func(p string, regions []string, err error) { h.tries <- run{p + " " + strings.Join(regions, ","), err} }})
	h.r.SetPolicies(f)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); h.r.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

// wait returns the next run, failing after a generous deadline.
func (h *harness) wait() run {
	h.t.Helper()
	select {
	case r := <-h.runs:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no run within 10s")
		return run{}
	}
}

// waitOK waits for a successful run of policy p.
func (h *harness) waitOK(p string) {
	h.t.Helper()
	r := h.wait()
	if r.policy != p || r.err != nil {
		h.t.Fatalf("run = %s %v, want %s ok", r.policy, r.err, p)
	}
}

// noRun checks that no run is reported.
func (h *harness) noRun() {
	h.t.Helper()
	select {
	case r := <-h.runs:
		h.t.Fatalf("unexpected run of %s (%v)", r.policy, r.err)
	default:
	}
}

func pairs(jobs []*job.Job) string {
	var s []string
	for _, j := range jobs {
		s = append(s, j.SourceImageID+">"+j.DestinationRegion)
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

func TestConverges(t *testing.T) {
	a := src("m-a", "golden-a", 1, golden)
	b := src("m-b", "golden-b", 2, golden)
	app := src("m-app", "app", 3, map[string]string{"role": "app"})
	c := newFakeCloud(a, b, app)
	h := start(t, c, parse(t, goldenPolicy))
	h.waitOK("golden")

	jobs := h.jobs.all()
	if got := pairs(jobs); got != "m-a>cn-beijing m-a>cn-shanghai m-b>cn-beijing m-b>cn-shanghai" {
		t.Fatalf("submitted %s", got)
	}
	for _, j := range jobs {
		if j.Policy != "golden" || j.Priority != 3 || j.State != job.StateQueued || j.SizeGiB != 40 ||
			j.DestinationImageName != j.SourceImageName+"-"+j.DestinationRegion || j.ImageFamily != "golden" ||
			len(j.ShareAccounts) != 1 || j.Tags["team"] != "p" || j.Tags[job.TagSourceImage] != j.SourceImageID ||
			j.Encrypted != (j.DestinationRegion == "cn-beijing") || !j.CreateTime.Equal(t0) {
			t.Errorf("job = %+v", j)
		}
	}
	st := h.r.Status()
	if len(st) != 1 || st[0].Matched != 2 || st[0].Actions[policy.ActionCopy] != 4 || st[0].Runs != 1 ||
		!st[0].LastRun.Equal(t0) || !st[0].NextRun.Equal(t0.Add(10*time.Minute)) || st[0].LastError != "" {
		t.Errorf("status = %+v", st)
	}

	// The scheduler copies everything; a run changes nothing.
	h.jobs.finish(c)
	h.r.Trigger("golden")
	h.waitOK("golden")
	if n := len(h.jobs.all()); n != 4 {
		t.Fatalf("%d jobs after converging, want 4", n)
	}
	if st := h.r.Status()[0]; st.Actions[policy.ActionExists] != 4 {
		t.Errorf("actions = %v", st.Actions)
	}

	// A copy deleted by hand comes back; a new source is copied. The
	// interval triggers the run.
	gone := jobs[0]
	var goneID string
	for _, j := range h.jobs.all() {
		if j.ID == gone.ID {
			goneID = j.DestinationImageID
		}
	}
	c.remove(gone.DestinationRegion, goneID)
	c.add(src("m-c", "golden-c", 4, golden))
	h.clk.Step(10 * time.Minute)
	h.waitOK("golden")
	want := []string{"m-c>cn-beijing", "m-c>cn-shanghai", gone.SourceImageID + ">" + gone.DestinationRegion}
	sort.Strings(want)
	if got := pairs(h.jobs.all()[4:]); got != strings.Join(want, " ") {
		t.Errorf("new jobs: %s, want %s", got, strings.Join(want, " "))
	}
	if n := c.count("CopyImage") + c.count("DeleteImage") + c.count("TagImages"); n != 0 {
		t.Errorf("the reconciler made %d changing calls", n)
	}
}

// TestForeignLeftProvenPruned: retention deletes only the copy the store
// proves ours (and marks its job PRUNED); hand-made copies with partial or
// complete forged lineage tags, another installation's copy and a copy
// whose job the store does not know are foreign: never deleted, never
// adopted, and the policy makes its own copies instead.
func TestForeignLeftProvenPruned(t *testing.T) {
	s1 := src("m-1", "golden-1", 1, golden)
	s2 := src("m-2", "golden-2", 2, golden)
	s3 := src("m-3", "golden-3", 3, golden)
	j1 := &job.Job{ID: job.NewID(t0), Policy: "keep", SourceRegion: "cn-hangzhou", SourceImageID: "m-1", DestinationRegion: "cn-shanghai",
		DestinationImageID: "m-c1", State: job.StateSucceeded, Attempts: 1}
	lineage := func(s cloud.Image, jobID, owner string) map[string]string {
		return map[string]string{job.TagPolicy: "keep", job.TagSourceImage: s.ID, job.TagSourceRegion: "cn-hangzhou",
			job.TagJobID: jobID, job.TagAttempt: "1", job.TagOwner: owner}
	}
	partial := map[string]string{job.TagPolicy: "keep", job.TagSourceImage: s1.ID, job.TagSourceRegion: "cn-hangzhou"}
	img := func(id string, s cloud.Image, tags map[string]string) cloud.Image {
		return cloud.Image{ID: id, Region: "cn-shanghai", Name: s.Name, Status: cloud.StatusAvailable, CreationTime: t0, Tags: tags}
	}
	c := newFakeCloud(s1, s2, s3,
		img("m-c1", s1, lineage(s1, j1.ID, job.DefaultOwner)),              // ours: j1 records it
		img("m-forged", s1, lineage(s1, j1.ID, job.DefaultOwner)),          // j1's tags copied onto a hand-made image
		img("m-partial", s1, partial),                                      // hand-made, some tags
		img("m-team-b", s2, lineage(s2, job.NewID(t0), "team-b")),          // another installation's
		img("m-unknown", s3, lineage(s3, job.NewID(t0), job.DefaultOwner)), // a job id the store does not know
		// Another policy's copy is none of this policy's business.
		cloud.Image{ID: "m-x", Region: "cn-shanghai", Name: "x", Status: cloud.StatusAvailable, CreationTime: t0,
			Tags: map[string]string{job.TagPolicy: "other", job.TagSourceImage: s1.ID}},
	)
	h := start(t, c, parse(t, `  - name: keep
    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai]
    retention: {keep_last: 2}
`))
	// The first run (j1 not in the store yet: m-c1 is foreign too) makes
	// copies of s2 and s3, whose only copies are foreign, and adopts none.
	h.waitOK("keep")
	var copied []string
	for _, j := range h.jobs.all() {
		if j.DestinationImageID != "" {
			t.Errorf("job %s adopted %s", j.ID, j.DestinationImageID)
		}
		copied = append(copied, j.SourceImageID)
	}
	sort.Strings(copied)
	if strings.Join(copied, ",") != "m-2,m-3" {
		t.Errorf("copies made for %v, want m-2 and m-3 (their only copies are foreign)", copied)
	}
	if c.count("DeleteImage") != 0 {
		t.Fatalf("DeleteImage calls = %d before any copy was proven ours", c.count("DeleteImage"))
	}
	// The copies finish, and the store knows j1: m-c1 is proven ours and
	// beyond keep_last.
	h.jobs.finish(c)
	h.jobs.mu.Lock()
	h.jobs.jobs = append(h.jobs.jobs, j1)
	h.jobs.mu.Unlock()
	h.r.Trigger("keep")
	h.waitOK("keep")
	for _, j := range h.jobs.all() {
		if j.ID == j1.ID && j.State != job.StatePruned {
			t.Errorf("job of the pruned copy is %s, want PRUNED", j.State)
		}
	}
	if c.count("DeleteImage") != 1 {
		t.Errorf("DeleteImage calls = %d, want 1", c.count("DeleteImage"))
	}
	left, _ := c.DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-shanghai", Statuses: cloud.AllStatuses})
	var ids []string
	for _, im := range left {
		ids = append(ids, im.ID)
	}
	sort.Strings(ids)
	want := []string{"m-copy-" + suffix(h.jobs, "m-2"), "m-copy-" + suffix(h.jobs, "m-3"), "m-forged", "m-partial", "m-team-b", "m-unknown", "m-x"}
	sort.Strings(want)
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("left in cn-shanghai: %v", ids)
	}
	items, err := h.r.Plan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign := 0
	for _, it := range items {
		if it.Action == policy.ActionForeign {
			foreign++
		}
	}
	if foreign != 4 {
		t.Errorf("plan shows %d foreign images, want 4: %+v", foreign, items)
	}
}

// suffix is the id suffix fakeJobs.finish gave the copy of source src.
func suffix(f *fakeJobs, src string) string {
	for _, j := range f.all() {
		if j.SourceImageID == src && j.DestinationImageID != "" && j.State == job.StateSucceeded {
			return strings.TrimPrefix(j.DestinationImageID, "m-copy-")
		}
	}
	return "?"
}

// TestCancelBeatsRun: a cancel that lands between a run's listing and its
// job creation wins: the store refuses the new job of the cancelled pair
// in the same step as the insert, and the plan shows the pair skipped.
func TestCancelBeatsRun(t *testing.T) {
	s1 := src("m-1", "golden-1", 1, golden)
	c := newFakeCloud(s1)
	jobs := newFakeJobs()
	jobs.cloud = c
	f := parse(t, "  - name: p\n    source: {region: cn-hangzhou, images: {tags: {role: golden}}}\n    destinations: [cn-beijing]\n")
	r := New(c, jobs, Options{Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AfterList: func(string) {
			// The operator cancels a job of the pair meanwhile (e.g. the
			// one an ad-hoc reconcile made a moment ago).
			j := &job.Job{ID: job.NewID(t0), Policy: "p", SourceRegion: "cn-hangzhou", SourceImageID: "m-1", DestinationRegion: "cn-beijing", State: job.StateQueued}
			jobs.mu.Lock()
			jobs.jobs = append(jobs.jobs, j)
			jobs.mu.Unlock()
			jobs.cancel(j.ID)
			// The run read its jobs before the cancel.
		}})
	r.SetPolicies(f)
	l := r.loops["p"]
	// Make the run's job read miss the cancelled job, as a read before the
	// cancel would: plan on the observation taken before the hook ran.
	obs, _, err := r.observe(context.Background(), l.policy(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	items := l.policy().Plan(obs)
	if len(items) != 1 || items[0].Action != policy.ActionCopy {
		t.Fatalf("plan before the cancel = %+v, want one copy", items)
	}
	r.hook(l.policy().Name)
	if err := r.act(context.Background(), l.policy(), items, obs); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs.all() {
		if j.State != job.StateCancelled {
			t.Errorf("job %s (%s) made after the cancel", j.ID, j.State)
		}
	}
	items, err = r.Plan(context.Background(), nil)
	if err != nil || len(items) != 1 || items[0].Action != policy.ActionSkippedCancelled || !strings.Contains(items[0].Reason, "cancelled by test") {
		t.Errorf("plan after the cancel = %+v, %v", items, err)
	}
}

func TestPlanIsADryRun(t *testing.T) {
	big := src("m-big", "golden-big", 2, golden)
	big.SizeGiB = 250
	c := newFakeCloud(src("m-a", "golden-a", 1, golden), big)
	f := parse(t, strings.Replace(goldenPolicy, "priority: 3", "max_size_gib: 200", 1)+`  - name: off
    source: {region: cn-hangzhou, images: {name: "*"}}
    destinations: [cn-qingdao]
    enabled: false
`)
	// Not running: Plan works on the loaded policies alone.
	r := New(c, newFakeJobs(), Options{Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r.SetPolicies(f)
	items, err := r.Plan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Action.String()+" "+it.SourceImageID+">"+it.DestinationRegion)
	}
	want := "blocked m-big>cn-shanghai,blocked m-big>cn-beijing,copy m-a>cn-shanghai,copy m-a>cn-beijing"
	if strings.Join(got, ",") != want {
		t.Errorf("plan = %v", got)
	}
	if c.count("DescribeImages") != 3 || c.count("DeleteImage")+c.count("CopyImage") != 0 {
		t.Errorf("calls = %v", c.calls)
	}
	// A disabled policy is planned when named.
	items, err = r.Plan(context.Background(), []string{"off"})
	if err != nil || len(items) != 2 || items[0].DestinationRegion != "cn-qingdao" {
		t.Errorf("plan off = %+v, %v", items, err)
	}
	if _, err := r.Plan(context.Background(), []string{"nope"}); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != `policy "nope": not found` {
		t.Errorf("unknown policy: %v", err)
	}
	// A destination that cannot be listed (transient) is left out of the
	// plan and its error reported with the policy's name.
	c.setFail("cn-beijing", &cloud.Error{Action: "DescribeImages", Region: "cn-beijing", Code: "InternalError", Class: cloud.ClassRetryable})
	items, err = r.Plan(context.Background(), []string{"golden"})
	if err == nil || err.Error() != `policy "golden": list copies in cn-beijing: DescribeImages in cn-beijing: InternalError (not planned this time)` {
		t.Errorf("failing plan: %v", err)
	}
	if len(items) != 2 || items[0].DestinationRegion != "cn-shanghai" || items[1].DestinationRegion != "cn-shanghai" {
		t.Errorf("plan with cn-beijing unlisted = %+v", items)
	}
	// A permanent one fails the policy's plan.
	c.setFail("cn-beijing", &cloud.Error{Action: "DescribeImages", Region: "cn-beijing", Code: "Forbidden.RAM", Class: cloud.ClassPermanent})
	items, err = r.Plan(context.Background(), []string{"golden"})
	if err == nil || len(items) != 0 || err.Error() != `policy "golden": list copies in cn-beijing: DescribeImages in cn-beijing: Forbidden.RAM` {
		t.Errorf("forbidden plan: %+v, %v", items, err)
	}
}

const threeRegions = `  - name: golden
    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai, cn-beijing, cn-qingdao]
`

// waitTry returns the next retry of failing destinations alone.
func (h *harness) waitTry() run {
	h.t.Helper()
	select {
	case r := <-h.tries:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no destination retry within 10s")
		return run{}
	}
}

func TestOneDestinationFailsTransiently(t *testing.T) {
	// A copy in cn-beijing with the policy's tags and no job: FOREIGN when
	// seen, but never judged while cn-beijing cannot be listed.
	stray := cloud.Image{ID: "m-stray", Region: "cn-beijing", Name: "x", Status: cloud.StatusAvailable,
		Tags: map[string]string{job.TagPolicy: "golden", job.TagSourceImage: "m-a"}}
	c := newFakeCloud(src("m-a", "golden-a", 1, golden), stray)
	c.setFail("cn-beijing", &cloud.Error{Action: "DescribeImages", Region: "cn-beijing", Code: "ServiceUnavailable", HTTPStatus: 503, Class: cloud.ClassRetryable})
	h := start(t, c, parse(t, threeRegions))
	// The run goes through: the other two regions' copies are queued in it.
	h.waitOK("golden")
	if got := pairs(h.jobs.all()); got != "m-a>cn-qingdao m-a>cn-shanghai" {
		t.Fatalf("jobs after the first run = %q", got)
	}
	st := h.r.Status()[0]
	if st.LastError != "" || st.Failures != 0 || st.Actions[policy.ActionCopy] != 2 || st.Actions[policy.ActionForeign] != 0 ||
		!st.NextRun.Equal(t0.Add(policy.DefaultInterval)) {
		t.Errorf("policy status = %+v", st)
	}
	bj := st.Destinations[1]
	if bj.Region != "cn-beijing" || bj.Failures != 1 || !bj.NextRetry.Equal(t0.Add(30*time.Second)) ||
		bj.LastError != "list copies in cn-beijing: DescribeImages in cn-beijing: ServiceUnavailable" {
		t.Errorf("cn-beijing status = %+v", bj)
	}
	if sh := st.Destinations[0]; sh.Failures != 0 || sh.LastError != "" || !sh.NextRetry.IsZero() || !sh.LastListed.Equal(t0) {
		t.Errorf("cn-shanghai status = %+v", sh)
	}
	// cn-beijing is retried alone (the source and its own listing), with
	// backoff, and the policy keeps its schedule.
	calls := c.count("DescribeImages")
	h.clk.Step(30 * time.Second)
	if r := h.waitTry(); r.policy != "golden cn-beijing" || r.err != nil {
		t.Fatalf("retry = %+v", r)
	}
	if n := c.count("DescribeImages") - calls; n != 2 {
		t.Errorf("a retry made %d DescribeImages calls, want 2", n)
	}
	st = h.r.Status()[0]
	if bj := st.Destinations[1]; bj.Failures != 2 || !bj.NextRetry.Equal(t0.Add(90*time.Second)) {
		t.Errorf("cn-beijing after a failed retry = %+v", bj)
	}
	if !st.NextRun.Equal(t0.Add(policy.DefaultInterval)) || st.Runs != 1 {
		t.Errorf("policy status after a retry = %+v", st)
	}
	// Once it answers, the retry plans it: the copy is queued and the
	// stray copy is now judged FOREIGN (and left alone).
	c.setFail("cn-beijing", nil)
	h.clk.Step(60 * time.Second)
	h.waitTry()
	if got := pairs(h.jobs.all()); got != "m-a>cn-beijing m-a>cn-qingdao m-a>cn-shanghai" {
		t.Fatalf("jobs after the retry = %q", got)
	}
	if bj := h.r.Status()[0].Destinations[1]; bj.Failures != 0 || bj.LastError != "" || !bj.NextRetry.IsZero() || !bj.LastListed.Equal(t0.Add(90*time.Second)) {
		t.Errorf("cn-beijing recovered = %+v", bj)
	}
	if c.count("DeleteImage") != 0 {
		t.Errorf("a copy was deleted")
	}
	h.noRun()
	// Nothing more is retried: the next wake-up is the policy's run.
	h.clk.Step(policy.DefaultInterval)
	h.waitOK("golden")
	select {
	case r := <-h.tries:
		t.Errorf("unexpected retry %+v", r)
	default:
	}
}

func TestPermanentDestinationErrorFailsTheRun(t *testing.T) {
	c := newFakeCloud(src("m-a", "golden-a", 1, golden))
	c.setFail("cn-beijing", &cloud.Error{Action: "DescribeImages", Region: "cn-beijing", Code: "Forbidden.RAM", HTTPStatus: 403, Class: cloud.ClassPermanent})
	h := start(t, c, parse(t, threeRegions))
	if r := h.wait(); r.err == nil {
		t.Fatal("a forbidden destination did not fail the run")
	}
	if n := len(h.jobs.all()); n != 0 {
		t.Errorf("%d jobs submitted by a failed run", n)
	}
	if st := h.r.Status()[0]; st.Failures != 1 || !strings.Contains(st.LastError, "Forbidden.RAM") || !st.NextRun.Equal(t0.Add(30*time.Second)) {
		t.Errorf("status = %+v", st)
	}
}

func TestErrorsStayWithTheirPolicy(t *testing.T) {
	c := newFakeCloud(src("m-a", "golden-a", 1, golden),
		cloud.Image{ID: "m-q", Region: "cn-qingdao", Name: "q", Status: cloud.StatusAvailable, Tags: golden})
	c.setFail("cn-qingdao", &cloud.Error{Action: "DescribeImages", Region: "cn-qingdao", Code: "ServiceUnavailable", Class: cloud.ClassRetryable})
	f := parse(t, `  - name: broken
    source: {region: cn-qingdao, images: {tags: {role: golden}}}
    destinations: [cn-beijing]
  - name: fine
    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-beijing]
`)
	h := start(t, c, f)
	got := map[string]error{}
	for i := 0; i < 2; i++ {
		r := h.wait()
		got[r.policy] = r.err
	}
	if got["broken"] == nil || got["fine"] != nil {
		t.Fatalf("runs: %v", got)
	}
	if len(h.jobs.all()) != 1 {
		t.Errorf("fine submitted %d jobs", len(h.jobs.all()))
	}
	st := h.r.Status()
	if st[0].Name != "broken" || st[0].LastError != "list source images in cn-qingdao: DescribeImages in cn-qingdao: ServiceUnavailable" ||
		st[0].Failures != 1 || !st[0].NextRun.Equal(t0.Add(30*time.Second)) {
		t.Errorf("broken status = %+v", st[0])
	}
	// The failed policy is retried with backoff, well before its interval;
	// the healthy one waits for its interval.
	h.clk.Step(30 * time.Second)
	if r := h.wait(); r.policy != "broken" || r.err == nil {
		t.Fatalf("retry = %+v", r)
	}
	if st := h.r.Status()[0]; !st.NextRun.Equal(t0.Add(90 * time.Second)) {
		t.Errorf("second backoff: next run %v", st.NextRun.Sub(t0))
	}
	c.setFail("cn-qingdao", nil)
	h.clk.Step(60 * time.Second)
	h.waitOK("broken")
	if st := h.r.Status()[0]; st.LastError != "" || st.Runs != 3 || st.Failures != 2 {
		t.Errorf("recovered status = %+v", st)
	}
	h.noRun()
}

func TestRunsNeverOverlap(t *testing.T) {
	c := newFakeCloud(src("m-a", "golden-a", 1, golden))
	jobs := newFakeJobs()
	jobs.cloud = c
	jobs.gate = make(chan struct{})
	jobs.entered = make(chan string, 10)
	runs := make(chan run, 10)
	clk := clock.NewFake(t0)
	r := New(c, jobs, Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnRun: func(p string, err error, _ time.Duration) { runs <- run{p, err} }})
	f := parse(t, goldenPolicy)
	r.SetPolicies(f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	<-jobs.entered // the first run is inside PolicyJobs
	if st := r.Status()[0]; !st.Running {
		t.Errorf("status while running: %+v", st)
	}
	// Triggers, a reload with a change, and the interval passing, all
	// while the run is held: they make one more run, after this one.
	for i := 0; i < 5; i++ {
		r.Trigger("golden")
	}
	r.SetPolicies(parse(t, strings.Replace(goldenPolicy, "priority: 3", "priority: 4", 1)))
	clk.Step(time.Hour)
	jobs.gate <- struct{}{}
	if rr := <-runs; rr.err != nil {
		t.Fatal(rr.err)
	}
	<-jobs.entered // the second run
	jobs.gate <- struct{}{}
	if rr := <-runs; rr.err != nil {
		t.Fatal(rr.err)
	}
	select {
	case p := <-jobs.entered:
		t.Fatalf("a third run of %s", p)
	default:
	}
	jobs.mu.Lock()
	max := jobs.maxActive["golden"]
	jobs.mu.Unlock()
	if max != 1 {
		t.Errorf("%d runs of one policy at once", max)
	}
	if st := r.Status()[0]; st.Policy.Priority != 4 || st.Runs != 2 {
		t.Errorf("after reload: priority %d, %d runs", st.Policy.Priority, st.Runs)
	}
	if n := len(jobs.all()); n != 2 {
		t.Errorf("%d jobs, want 2 (the second run finds them in progress)", n)
	}
}

func TestHotReload(t *testing.T) {
	c := newFakeCloud(src("m-a", "golden-a", 1, golden))
	mk := func(name, dst string, extra string) string {
		return "  - name: " + name + "\n    source: {region: cn-hangzhou, images: {tags: {role: golden}}}\n    destinations: [" + dst + "]\n" + extra
	}
	h := start(t, c, parse(t, mk("a", "cn-beijing", "")+mk("b", "cn-shanghai", "")+mk("off", "cn-qingdao", "    enabled: false\n")))
	first := map[string]bool{}
	for i := 0; i < 2; i++ {
		r := h.wait()
		first[r.policy] = r.err == nil
	}
	if !first["a"] || !first["b"] || len(first) != 2 {
		t.Fatalf("first runs: %v", first)
	}
	if st := h.r.Status()[2]; st.Name != "off" || st.Enabled || st.Runs != 0 || !st.NextRun.IsZero() {
		t.Errorf("disabled: %+v", st)
	}
	// a changes, b goes, c arrives, off is enabled: a, c and off run at
	// once; nothing else.
	h.r.SetPolicies(parse(t, mk("a", "cn-beijing, cn-shenzhen", "")+mk("c", "cn-chengdu", "")+mk("off", "cn-qingdao", "")))
	got := map[string]bool{}
	for i := 0; i < 3; i++ {
		r := h.wait()
		got[r.policy] = r.err == nil
	}
	if !got["a"] || !got["c"] || !got["off"] {
		t.Fatalf("runs after reload: %v", got)
	}
	if h.r.Trigger("b") {
		t.Error("b is still loaded")
	}
	var names []string
	for _, s := range h.r.Status() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "a,c,off" {
		t.Errorf("status order: %v", names)
	}
	// The same file again changes nothing and runs nothing.
	h.r.SetPolicies(parse(t, "\n"+mk("a", "cn-beijing, cn-shenzhen", "")+mk("c", "cn-chengdu", "")+mk("off", "cn-qingdao", "")))
	h.noRun()
	if got := pairs(h.jobs.all()); got != "m-a>cn-beijing m-a>cn-chengdu m-a>cn-qingdao m-a>cn-shanghai m-a>cn-shenzhen" {
		t.Errorf("jobs: %s", got)
	}
	// b removed and added back runs again.
	h.r.SetPolicies(parse(t, mk("b", "cn-shanghai", "")))
	h.waitOK("b")
}

func TestSubmitAndPruneErrors(t *testing.T) {
	s1 := src("m-1", "golden-1", 1, golden)
	s2 := src("m-2", "golden-2", 2, golden)
	j1, j2 := job.NewID(t0), job.NewID(t0.Add(time.Second))
	lineage := func(src, id string) map[string]string {
		return map[string]string{job.TagPolicy: "p", job.TagSourceImage: src, job.TagSourceRegion: "cn-hangzhou", job.TagJobID: id}
	}
	c := newFakeCloud(s1, s2, cloud.Image{ID: "m-old", Region: "cn-beijing", Name: "golden-1", Status: cloud.StatusAvailable, Tags: lineage("m-1", j1)})
	c.delErr = &cloud.Error{Action: "DeleteImage", Region: "cn-beijing", Code: "ImageUseShared", Class: cloud.ClassPermanent}
	jobs := newFakeJobs()
	jobs.cloud = c
	jobs.jobs = []*job.Job{{ID: j1, Policy: "p", SourceRegion: "cn-hangzhou", SourceImageID: "m-1", DestinationRegion: "cn-beijing", DestinationImageID: "m-old", State: job.StateSucceeded}}
	jobs.submitErr = errors.New("disk full")
	r := New(c, jobs, Options{Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f := parse(t, "  - name: p\n    source: {region: cn-hangzhou, images: {tags: {role: golden}}}\n    destinations: [cn-beijing]\n    retention: {keep_last: 1}\n")
	r.SetPolicies(f)
	l := r.loops["p"]
	_, err := r.runOnce(context.Background(), l, l.policy(), nil)
	if err == nil || err.Error() != "submit 1 jobs: disk full" {
		t.Errorf("err = %v", err)
	}
	// m-old is the newest Available copy until m-2's copy exists: kept.
	if c.count("DeleteImage") != 0 {
		t.Errorf("deleted the only Available copy")
	}
	jobs.submitErr = nil
	c.add(cloud.Image{ID: "m-new", Region: "cn-beijing", Name: "golden-2", Status: cloud.StatusAvailable, Tags: lineage("m-2", j2)})
	jobs.jobs = append(jobs.jobs, &job.Job{ID: j2, Policy: "p", SourceRegion: "cn-hangzhou", SourceImageID: "m-2", DestinationRegion: "cn-beijing",
		DestinationImageID: "m-new", State: job.StateSucceeded, CreateTime: t0.Add(time.Second)})
	_, err = r.runOnce(context.Background(), l, l.policy(), nil)
	if err == nil || err.Error() != "prune m-old in cn-beijing: DeleteImage in cn-beijing: ImageUseShared" {
		t.Errorf("err = %v", err)
	}
	if st := l.snapshot(); st.Actions[policy.ActionPrune] != 1 || st.Actions[policy.ActionExists] != 1 || st.Failures != 2 {
		t.Errorf("status = %+v", st)
	}
}

func TestManyIDsArePaged(t *testing.T) {
	var images []cloud.Image
	var ids []string
	for i := 0; i < 250; i++ {
		id := "m-bp1" + strings.Repeat("0", 12) + string(rune('a'+i/26%26)) + string(rune('a'+i%26)) + "zz"
		ids = append(ids, id)
		images = append(images, src(id, "img-"+id, i%28, nil))
	}
	c := newFakeCloud(images...)
	f := parse(t, "  - name: p\n    source: {region: cn-hangzhou, images: {ids: ["+strings.Join(ids, ", ")+"]}}\n    destinations: [cn-beijing]\n")
	r := New(c, newFakeJobs(), Options{Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r.SetPolicies(f)
	items, err := r.Plan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 250 || c.count("DescribeImages") != 3+1 {
		t.Errorf("%d items, %d DescribeImages calls", len(items), c.count("DescribeImages"))
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, 30 * time.Second}, {2, time.Minute}, {3, 2 * time.Minute}, {5, 8 * time.Minute}, {6, 10 * time.Minute}, {60, 10 * time.Minute}} {
		if got := backoff(30*time.Second, tc.failures, 10*time.Minute); got != tc.want {
			t.Errorf("backoff(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}
