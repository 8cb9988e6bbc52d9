package scheduler

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/cloud/aliyun"
	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The SDK's HTTP keep-alive connections to the emulator.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

const (
	srcRegion = "cn-hangzhou"
	keyID     = "LTAItestkey"
	keySecret = "test-secret-value"
)

var epoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// harness runs a scheduler against the real emulator over real HTTP through
// the real SDK adapter, with a real bbolt file; only the clock is fake,
// shared by the emulator and the scheduler.
type harness struct {
	t     *testing.T
	clk   *clock.Fake
	emu   *ecsemu.Emulator
	cloud *aliyun.Provider
	store *state.DB
	s     *Scheduler
	path  string
	// storeOpts and feedHook, when set before open, shape the next store
	// and scheduler (feed_test.go).
	storeOpts state.Options
	feedHook  func(rev int64)
	// wrap, when set before open, stands between the scheduler and the
	// SDK adapter (forecast_test.go holds a poll in flight with it).
	wrap func(cloud.Provider) cloud.Provider
}

func images(sizes ...int64) []ecsemu.FixtureImage {
	var out []ecsemu.FixtureImage
	for i, sz := range sizes {
		out = append(out, ecsemu.FixtureImage{
			Region: srcRegion, ID: imageID(i), Name: "golden-" + string(rune('a'+i)), SizeGiB: sz,
			Status: cloud.StatusAvailable, CreationTime: epoch.Add(-time.Duration(i+1) * time.Hour),
		})
	}
	return out
}

func imageID(i int) string { return "m-src" + string(rune('a'+i)) + "0000000000000000" }

// newHarness starts the emulator, the store and the scheduler; setup, when
// given, runs before the store and the scheduler are opened.
func newHarness(t *testing.T, ecfg ecsemu.Config, opts Options, setup ...func(*harness)) *harness {
	t.Helper()
	h := &harness{t: t, clk: clock.NewFake(epoch), path: t.TempDir() + "/state.db"}
	ecfg.Clock = h.clk
	ecfg.AuthClock = clock.Real{} // the SDK signs with the wall clock
	ecfg.Credentials = map[string]string{keyID: keySecret}
	if ecfg.StartupDelay == 0 {
		ecfg.StartupDelay = -1
	}
	if ecfg.ThrottleRate == 0 {
		ecfg.ThrottleRate = -1
	}
	emu, err := ecsemu.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	h.emu = emu
	t.Cleanup(func() { srv.Close(); emu.Close() })
	h.cloud, err = aliyun.New(aliyun.Config{
		Endpoint: srv.URL, Insecure: true,
		Credentials: aliyun.Credentials{AccessKeyID: keyID, AccessKeySecret: keySecret},
		ReadTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.cloud.Close)
	for _, f := range setup {
		f(h)
	}
	h.open(opts)
	return h
}

func (h *harness) open(opts Options) {
	h.t.Helper()
	var err error
	so := h.storeOpts
	so.Clock = h.clk
	h.store, err = state.Open(h.path, so)
	if err != nil {
		h.t.Fatal(err)
	}
	opts.Clock = h.clk
	if opts.APIRate == 0 {
		opts.APIRate = 1000
	}
	switch {
	case opts.Logger != nil: // the test reads the log
	case os.Getenv("SCHEDULER_TEST_LOG") != "":
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	default:
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var prov cloud.Provider = h.cloud
	if h.wrap != nil {
		prov = h.wrap(prov)
	}
	h.s = New(h.store, prov, opts)
	h.s.feedHook = h.feedHook
	if err := h.s.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(h.close)
}

// close stops the scheduler and the store, as a daemon stop would.
func (h *harness) close() {
	if h.s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.s.Stop(ctx)
	h.store.Close()
	h.s = nil
}

// settle returns once the scheduler has nothing to do at the current fake
// time: every change in the store seen by its feed, no step ready or
// running, and no delayed step due.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for stable := 0; stable < 3; {
		caughtUp := h.s.feedCaughtUp()
		st := h.s.queue.Stats()
		next, ok := h.s.queue.NextReady()
		idle := caughtUp && st.Ready == 0 && st.Processing == 0 && (!ok || next.After(h.clk.Now()))
		if idle {
			stable++
		} else {
			stable = 0
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("scheduler did not settle: %+v", st)
		}
		time.Sleep(time.Millisecond) // poll a condition; never relied on as a delay
	}
}

// waitFor waits (in real time, clock untouched) until cond holds.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not reached", what)
		}
		time.Sleep(time.Millisecond) // poll a condition; never relied on as a delay
	}
}

// runUntil moves the fake clock in steps until cond holds.
func (h *harness) runUntil(what string, step time.Duration, maxSteps int, cond func() bool) {
	h.t.Helper()
	for i := 0; i < maxSteps; i++ {
		h.settle()
		if cond() {
			return
		}
		h.clk.Step(step)
	}
	h.settle()
	if !cond() {
		h.t.Fatalf("%s: not reached after %d steps of %s", what, maxSteps, step)
	}
}

func (h *harness) submit(jobs ...*job.Job) {
	h.t.Helper()
	if err := h.s.Submit(context.Background(), jobs...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) job(id string) *job.Job {
	h.t.Helper()
	j, err := h.store.Get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *harness) states(ids []string) map[job.State]int {
	out := map[job.State]int{}
	for _, id := range ids {
		out[h.job(id).State]++
	}
	return out
}

func (h *harness) allTerminal(ids []string) func() bool {
	return func() bool {
		for _, id := range ids {
			if !h.job(id).State.Terminal() {
				return false
			}
		}
		return true
	}
}

// copiesIn lists the images in a region that replicatord made (any status).
func (h *harness) copiesIn(region string) []cloud.Image {
	h.t.Helper()
	imgs, err := h.cloud.DescribeImages(context.Background(), cloud.ImageQuery{Region: region, Statuses: cloud.AllStatuses})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []cloud.Image
	for _, im := range imgs {
		if im.Tags[job.TagJobID] != "" {
			out = append(out, im)
		}
	}
	return out
}

var seq int

func newJob(src int, size int64, dst string) *job.Job {
	seq++
	return &job.Job{
		ID:                job.NewID(epoch.Add(time.Duration(seq) * time.Millisecond)),
		SourceRegion:      srcRegion,
		SourceImageID:     imageID(src),
		SizeGiB:           size,
		DestinationRegion: dst,
	}
}

func ids(jobs []*job.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func reopen(t *testing.T, h *harness) *state.DB {
	t.Helper()
	s, err := state.Open(h.path, state.Options{Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
