package ecsemu_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

func TestThrottling(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.ThrottleRate = 3 // per 60 s: a bucket of 3, one token back every 20 s
		cfg.Credentials["otherid"] = "othersecret"
	})
	c := r.c
	for i := 0; i < 3; i++ {
		c.ok("DescribeRegions")
	}
	msg := c.fails(400, "Throttling.User", "DescribeRegions")
	if msg != "Request was denied due to user flow control." {
		t.Fatalf("throttle message %q", msg)
	}
	// Buckets are per action and per access key.
	c.ok("DescribeImages", "RegionId", "cn-hangzhou")
	other := newClient(t, r.srv.URL, r.clk)
	other.id, other.secret = "otherid", "othersecret"
	other.ok("DescribeRegions")

	r.clk.Step(20 * time.Second)
	c.ok("DescribeRegions")
	c.fails(400, "Throttling.User", "DescribeRegions")

	st := r.emu.Stats()
	if st.Throttled != 2 || st.Calls["DescribeRegions"]["Throttling.User"] != 2 || st.Calls["DescribeRegions"]["200"] != 5 {
		t.Fatalf("stats: throttled %d, calls %v", st.Throttled, st.Calls["DescribeRegions"])
	}
}

// A time-scaled bucket keeps ECS's burst: ThrottleBurst tokens at
// start, refilled at the (scaled) ThrottleRate.
func TestThrottleBurstWithAScaledRate(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.ThrottleRate = 600 // 10 a second: ECS's 1000 a minute at scale 0.6
		cfg.ThrottleBurst = 4
	})
	for i := 0; i < 4; i++ {
		r.c.ok("DescribeRegions")
	}
	r.c.fails(400, "Throttling.User", "DescribeRegions")
	r.clk.Step(200 * time.Millisecond) // two tokens at 10 a second
	r.c.ok("DescribeRegions")
	r.c.ok("DescribeRegions")
	r.c.fails(400, "Throttling.User", "DescribeRegions")
}

func TestThrottlingCodeAndDisabled(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) { cfg.ThrottleRate = 1; cfg.ThrottleCode = "Throttling" })
	r.c.ok("DescribeRegions")
	r.c.fails(400, "Throttling", "DescribeRegions")

	off := newRig(t, func(cfg *ecsemu.Config) { cfg.ThrottleRate = -1 })
	for i := 0; i < 50; i++ {
		off.c.ok("DescribeRegions")
	}
	if off.emu.Stats().Throttled != 0 {
		t.Fatal("disabled throttling throttled")
	}
}

// codes runs n calls and returns their results as a string.
func codes(c *client, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		status, m := c.call("DescribeRegions")
		if status == 200 {
			b.WriteString("ok ")
		} else {
			b.WriteString(m["Code"].(string) + " ")
		}
	}
	return b.String()
}

func TestFaultsAreSeeded(t *testing.T) {
	run := func(seed int64) (string, ecsemu.Stats) {
		r := newRig(t, func(cfg *ecsemu.Config) {
			cfg.Seed = seed
			cfg.Faults = map[string]ecsemu.Fault{"*": {InternalErrorRate: 0.3, UnavailableRate: 0.3}}
		})
		// Actions without faults of their own use "*"; the status codes are
		// 500 and 503.
		status, m := 0, map[string]any(nil)
		for status != 500 {
			status, m = r.c.call("DescribeImages", "RegionId", "cn-hangzhou")
		}
		if m["Code"] != "InternalError" {
			t.Fatalf("500 with code %v", m["Code"])
		}
		for status != 503 {
			status, m = r.c.call("DescribeImages", "RegionId", "cn-hangzhou")
		}
		if m["Code"] != "ServiceUnavailable" {
			t.Fatalf("503 with code %v", m["Code"])
		}
		return codes(r.c, 30), r.emu.Stats()
	}
	a, st := run(99)
	b, _ := run(99)
	if a != b {
		t.Fatalf("same seed, different sequences:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "ok") || !strings.Contains(a, "InternalError") || !strings.Contains(a, "ServiceUnavailable") {
		t.Fatalf("sequence lacks a kind: %s", a)
	}
	if st.Faults["DescribeRegions"]["InternalError"] != int64(strings.Count(a, "InternalError")) {
		t.Fatalf("fault counter %v for %s", st.Faults["DescribeRegions"], a)
	}
}

func TestSetFaultsAtRunTime(t *testing.T) {
	r := newRig(t, nil)
	r.emu.SetFaults("DescribeRegions", ecsemu.Fault{UnavailableRate: 1})
	r.c.fails(503, "ServiceUnavailable", "DescribeRegions")
	r.c.ok("DescribeImages", "RegionId", "cn-hangzhou") // another action is unaffected
	r.emu.SetFaults("DescribeRegions", ecsemu.Fault{})
	r.c.ok("DescribeRegions")
	// Out-of-range values are clamped rather than refused.
	r.emu.SetFaults("DescribeRegions", ecsemu.Fault{InternalErrorRate: 7})
	if f := r.emu.Faults()["DescribeRegions"]; f.InternalErrorRate != 1 {
		t.Fatalf("clamped fault %+v", f)
	}
	r.c.fails(500, "InternalError", "DescribeRegions")
}

func TestFaultInOneRegion(t *testing.T) {
	r := newRig(t, nil)
	// An "Action@region" entry fails only that region's calls, and wins
	// over the action's own entry there.
	r.emu.SetFaults("DescribeImages@cn-beijing", ecsemu.Fault{UnavailableRate: 1})
	r.c.fails(503, "ServiceUnavailable", "DescribeImages", "RegionId", "cn-beijing")
	r.c.ok("DescribeImages", "RegionId", "cn-hangzhou")
	r.emu.SetFaults("DescribeImages", ecsemu.Fault{InternalErrorRate: 1})
	r.c.fails(503, "ServiceUnavailable", "DescribeImages", "RegionId", "cn-beijing")
	r.c.fails(500, "InternalError", "DescribeImages", "RegionId", "cn-hangzhou")
	r.emu.SetFaults("DescribeImages", ecsemu.Fault{})
	r.emu.SetFaults("DescribeImages@cn-beijing", ecsemu.Fault{})
	r.c.ok("DescribeImages", "RegionId", "cn-beijing")
}

func TestHangUntilClientGivesUp(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.Faults = map[string]ecsemu.Fault{"DescribeImages": {HangRate: 1}}
	})
	blocked := make(chan string, 1)
	ecsemu.SetTestHookBlocked(r.emu, func(kind string) { blocked <- kind })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.srv.URL+"/?"+query(r.c.signed("DescribeImages", "RegionId", "cn-hangzhou")), nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if kind := <-blocked; kind != "hang" {
		t.Fatalf("blocked in %q", kind)
	}
	if r.emu.Stats().Hanging != 1 {
		t.Fatal("Stats.Hanging is not 1 while a request hangs")
	}
	select {
	case err := <-done:
		t.Fatalf("hung request returned: %v", err)
	default:
	}
	cancel() // the client gives up
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error %v", err)
	}
}

func TestCloseReleasesHungAndDelayedRequests(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.Faults = map[string]ecsemu.Fault{"DescribeImages": {HangRate: 1}, "DescribeRegions": {Latency: time.Hour}}
	})
	blocked := make(chan string, 2)
	ecsemu.SetTestHookBlocked(r.emu, func(kind string) { blocked <- kind })
	done := make(chan error, 2)
	for _, p := range []map[string]string{r.c.signed("DescribeImages", "RegionId", "cn-hangzhou"), r.c.signed("DescribeRegions")} {
		go func() {
			resp, err := http.Post(r.srv.URL+"/?"+query(p), "", nil)
			if err == nil {
				resp.Body.Close()
				err = errors.New("got an answer: " + resp.Status)
			}
			done <- err
		}()
	}
	<-blocked
	<-blocked
	r.emu.Close()
	for i := 0; i < 2; i++ {
		// Released requests lose their connection: an empty 200 would
		// look like success to the SDK.
		if err := <-done; err == nil || strings.Contains(err.Error(), "got an answer") {
			t.Fatalf("released request: %v", err)
		}
	}
}

func TestLatencyOnTheEmulatorClock(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.Faults = map[string]ecsemu.Fault{"DescribeRegions": {Latency: 5 * time.Second}}
	})
	blocked := make(chan string, 1)
	ecsemu.SetTestHookBlocked(r.emu, func(kind string) { blocked <- kind })
	done := make(chan int, 1)
	p := r.c.signed("DescribeRegions")
	go func() {
		status, _ := r.c.send(p)
		done <- status
	}()
	if kind := <-blocked; kind != "latency" {
		t.Fatalf("blocked in %q", kind)
	}
	select {
	case s := <-done:
		t.Fatalf("answered (%d) before the latency passed", s)
	default:
	}
	r.clk.Step(5 * time.Second)
	if s := <-done; s != 200 {
		t.Fatalf("status after latency %d", s)
	}
}

func TestDroppedConnection(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.Faults = map[string]ecsemu.Fault{"CopyImage": {DropRate: 1}}
	})
	p := r.c.signed("CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "DestinationRegionId", "cn-beijing")
	resp, err := http.Post(r.srv.URL+"/?"+query(p), "", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("dropped request answered %s", resp.Status)
	}
	if st := r.emu.Stats(); st.Calls["CopyImage"]["Dropped"] != 1 || st.CopiesSubmitted["cn-beijing"] != 0 {
		t.Fatalf("after a drop: calls %v, submitted %v", st.Calls["CopyImage"], st.CopiesSubmitted)
	}
}

func query(p map[string]string) string {
	q := url.Values{}
	for k, v := range p {
		q.Set(k, v)
	}
	return q.Encode()
}
