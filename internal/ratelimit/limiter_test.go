package ratelimit

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/errdefs"
)

const action = "CopyImage"

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// waitAsync starts a Wait and returns its result channel.
func waitAsync(ctx context.Context, l *Limiter, a string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- l.Wait(ctx, a) }()
	return ch
}

func mustNotReturn(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: Wait returned (%v) before its token was due", what, err)
	default:
	}
}

// TestRateRespectedOverWindow runs a caller in a tight Wait loop while the
// test advances a fake clock in 10 ms steps for 10 s, and counts the calls.
func TestRateRespectedOverWindow(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, Burst: 5, Clock: c})
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l.Wait(ctx, action) == nil {
			calls.Add(1)
		}
	}()
	for range 1000 {
		c.BlockUntil(1) // the caller is blocked on its next token
		c.Step(10 * time.Millisecond)
	}
	c.BlockUntil(1)
	got := calls.Load()
	cancel()
	recv(t, done, "the caller to stop")
	// Burst 5 at once, then 10/s for 10 s.
	if got < 104 || got > 106 {
		t.Fatalf("%d calls in 10 s at 10/s with burst 5, want 105±1", got)
	}
}

func TestWaitBlocksForTheNextToken(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, Burst: 1, Clock: c})
	if err := l.Wait(context.Background(), action); err != nil {
		t.Fatal(err)
	}
	ch := waitAsync(context.Background(), l, action)
	c.BlockUntil(1)
	c.Step(99 * time.Millisecond)
	mustNotReturn(t, ch, "at 99ms")
	c.Step(time.Millisecond)
	if err := recv(t, ch, "Wait at 100ms"); err != nil {
		t.Fatal(err)
	}
}

func TestActionsHaveSeparateBuckets(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 1, Burst: 1, PerAction: map[string]float64{"DescribeImages": 4}, Clock: c})
	if r := l.Rate("DescribeImages"); r != 4 {
		t.Fatalf("Rate(DescribeImages) = %v, want the PerAction 4", r)
	}
	if r := l.Rate(action); r != 1 {
		t.Fatalf("Rate(%s) = %v, want the default 1", action, r)
	}
	for _, a := range []string{action, "DescribeImages"} {
		if err := l.Wait(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	// Both buckets are empty now; DescribeImages refills 4x faster.
	copyCh := waitAsync(context.Background(), l, action)
	descCh := waitAsync(context.Background(), l, "DescribeImages")
	c.BlockUntil(2)
	c.Step(250 * time.Millisecond)
	if err := recv(t, descCh, "DescribeImages after 250ms"); err != nil {
		t.Fatal(err)
	}
	mustNotReturn(t, copyCh, "CopyImage at 250ms")
	c.Step(750 * time.Millisecond)
	if err := recv(t, copyCh, "CopyImage after 1s"); err != nil {
		t.Fatal(err)
	}
}

func TestThrottleDecreasesOncePerCooldown(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, Decrease: 0.5, Cooldown: 5 * time.Second, Clock: c})
	l.OnThrottle(action)
	l.OnThrottle(action) // same burst of in-flight failures
	c.Step(4 * time.Second)
	l.OnThrottle(action)
	if r := l.Rate(action); r != 5 {
		t.Fatalf("Rate after a burst of throttles within the cooldown = %v, want 5", r)
	}
	c.Step(time.Second)
	l.OnThrottle(action)
	if r := l.Rate(action); r != 2.5 {
		t.Fatalf("Rate after a throttle past the cooldown = %v, want 2.5", r)
	}
	if r := l.Rate("DescribeImages"); r != 10 {
		t.Fatalf("another action's rate = %v, want it untouched at 10", r)
	}
}

func TestThrottleNeverBelowMinRate(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, MinRate: 1, Decrease: 0.5, Cooldown: time.Second, Clock: c})
	for range 20 {
		l.OnThrottle(action)
		c.Step(time.Second)
	}
	if r := l.Rate(action); r != 1 {
		t.Fatalf("Rate after 20 throttles = %v, want MinRate 1", r)
	}
	// A ceiling below MinRate is its own floor.
	l = New(Options{Rate: 10, MinRate: 1, PerAction: map[string]float64{"Slow": 0.5}, Clock: c})
	l.OnThrottle("Slow")
	if r := l.Rate("Slow"); r != 0.5 {
		t.Fatalf("Rate of an action whose ceiling is under MinRate = %v, want 0.5", r)
	}
}

func TestThrottleAppliesToWaitAndDropsBankedTokens(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, Burst: 5, Decrease: 0.5, Clock: c})
	if err := l.Wait(context.Background(), action); err != nil { // bucket now holds 4
		t.Fatal(err)
	}
	l.OnThrottle(action) // 5/s, and the 4 banked tokens are gone
	ch := waitAsync(context.Background(), l, action)
	c.BlockUntil(1)
	c.Step(199 * time.Millisecond)
	mustNotReturn(t, ch, "at 199ms after a throttle to 5/s")
	c.Step(time.Millisecond)
	if err := recv(t, ch, "Wait at 200ms"); err != nil {
		t.Fatal(err)
	}
}

func TestSuccessRestoresAdditivelyUpToCeiling(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, Increase: 1, Decrease: 0.5, Cooldown: 5 * time.Second, Clock: c})
	l.OnSuccess(action)
	if r := l.Rate(action); r != 10 {
		t.Fatalf("Rate after success at the ceiling = %v, want 10", r)
	}
	l.OnThrottle(action)
	c.Step(3 * time.Second)
	l.OnSuccess(action) // in-flight success during the cooldown: no increase
	if r := l.Rate(action); r != 5 {
		t.Fatalf("Rate after a success inside the cooldown = %v, want 5", r)
	}
	c.Step(4 * time.Second) // 2 s past the cooldown
	l.OnSuccess(action)
	if r := l.Rate(action); !near(r, 7) {
		t.Fatalf("Rate 2 s after the cooldown = %v, want 7 (5 + 2 s × 1/s)", r)
	}
	c.Step(time.Second)
	l.OnSuccess(action)
	if r := l.Rate(action); !near(r, 8) {
		t.Fatalf("Rate one more second later = %v, want 8", r)
	}
	c.Step(time.Hour)
	l.OnSuccess(action)
	if r := l.Rate(action); r != 10 {
		t.Fatalf("Rate after a long success = %v, want the ceiling 10", r)
	}
	if got := l.Rates(); len(got) != 1 || got[action] != 10 {
		t.Fatalf("Rates = %v, want map[%s:10]", got, action)
	}
}

func TestSuccessRaisesTheWaitRate(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, Burst: 1, Increase: 1, Decrease: 0.5, Cooldown: time.Second, Clock: c})
	l.OnThrottle(action) // 5/s
	c.Step(4 * time.Second)
	l.OnSuccess(action) // 5 + 3 = 8/s
	if err := l.Wait(context.Background(), action); err != nil {
		t.Fatal(err)
	}
	ch := waitAsync(context.Background(), l, action)
	c.BlockUntil(1)
	c.Step(124 * time.Millisecond)
	mustNotReturn(t, ch, "at 124ms at 8/s")
	c.Step(time.Millisecond)
	if err := recv(t, ch, "Wait at 125ms"); err != nil {
		t.Fatal(err)
	}
}

func TestWaitCancelReturnsAndGivesBackItsToken(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, Burst: 1, Clock: c})
	if err := l.Wait(context.Background(), action); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := waitAsync(ctx, l, action)
	c.BlockUntil(1)
	cancel()
	if err := recv(t, ch, "the cancelled Wait"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := c.Waiters(); n != 0 {
		t.Fatalf("%d timers left behind by the cancelled Wait", n)
	}
	// Its reservation (due at 100ms) was returned: the next caller gets the
	// token at 100ms, not at 200ms.
	c.Step(100 * time.Millisecond)
	ch = waitAsync(context.Background(), l, action)
	if err := recv(t, ch, "Wait after the returned token"); err != nil {
		t.Fatal(err)
	}
}

func TestWaitWithCancelledContextTakesNoToken(t *testing.T) {
	c := clock.NewFake(epoch)
	l := New(Options{Rate: 10, Burst: 1, Clock: c})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := l.Wait(ctx, action)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), action) {
		t.Fatalf("err = %v, want context.Canceled naming the action", err)
	}
	if err := l.Wait(context.Background(), action); err != nil { // the one token is still there
		t.Fatal(err)
	}
}

func TestWaitFailsFastPastDeadline(t *testing.T) {
	l := New(Options{Rate: 0.001, Burst: 1}) // real clock: next token in 1000 s
	if err := l.Wait(context.Background(), action); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	// Without the early check this would block for the 100 s.
	err := recv(t, waitAsync(ctx, l, action), "Wait to fail fast")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "after the context deadline") {
		t.Fatalf("err = %v, want an early DeadlineExceeded", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	l := New(Options{Rate: 1e6, Burst: 1000})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			a := []string{"CopyImage", "DescribeImages"}[i%2]
			for range 500 {
				if err := l.Wait(context.Background(), a); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					l.OnThrottle(a)
				} else {
					l.OnSuccess(a)
				}
				_ = l.Rate(a)
			}
		})
	}
	wg.Wait()
	for a, r := range l.Rates() {
		if r < DefaultMinRate || r > 1e6 {
			t.Errorf("Rate(%s) = %v, outside [MinRate, ceiling]", a, r)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("zero Options: %v", err)
	}
	good := Options{Rate: 5, Burst: 3, PerAction: map[string]float64{"CopyImage": 2}, MinRate: 0.5,
		Increase: 0.2, Decrease: 0.7, Cooldown: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid Options: %v", err)
	}
	bad := Options{Rate: math.NaN(), Burst: -1, PerAction: map[string]float64{"CopyImage": 0, "": 1},
		MinRate: -1, Increase: math.Inf(1), Decrease: 1, Cooldown: -time.Second}
	err := bad.Validate()
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("err = %v, want ErrInvalidArgument", err)
	}
	fields := map[string]bool{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fields[errdefs.Field(e)] = true
	}
	for _, f := range []string{"rate", "burst", "per_action.CopyImage", "per_action", "min_rate", "increase", "decrease", "cooldown"} {
		if !fields[f] {
			t.Errorf("no error names field %q: %v", f, err)
		}
	}
	if len(fields) != 8 {
		t.Errorf("fields at fault = %v, want exactly the 8 bad ones", fields)
	}
}

func TestNewRepairsInvalidOptions(t *testing.T) {
	l := New(Options{Rate: -3, MinRate: math.NaN(), Decrease: 2, Burst: -1,
		PerAction: map[string]float64{"CopyImage": -1}})
	if r := l.Rate("CopyImage"); r != DefaultRate {
		t.Fatalf("Rate = %v, want DefaultRate %v", r, DefaultRate)
	}
	l.OnThrottle("CopyImage")
	if r := l.Rate("CopyImage"); !near(r, DefaultRate*DefaultDecrease) {
		t.Fatalf("Rate after throttle = %v, want %v", r, DefaultRate*DefaultDecrease)
	}
	if r := l.Rate("DescribeImages"); r != DefaultRate {
		t.Fatalf("Rate of an action without a valid override = %v, want DefaultRate", r)
	}
}
