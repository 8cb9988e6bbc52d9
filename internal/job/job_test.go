package job

import (
	"sort"
	"testing"
	"time"
)

func TestTransitions(t *testing.T) {
	ok := [][2]State{
		{StateQueued, StateSubmitting}, {StateSubmitting, StateWaiting}, {StateWaiting, StateCopying},
		{StateCopying, StateSucceeded}, {StateCopying, StateCancelling}, {StateCancelling, StateCancelled},
		{StateFailed, StateQueued}, {StateCopying, StateQueued}, {StateQueued, StateQueued},
		{StateSubmitting, StateCancelled}, // cancelled before ECS made a copy
	}
	for _, p := range ok {
		if err := CheckTransition(p[0], p[1]); err != nil {
			t.Errorf("%v -> %v refused: %v", p[0], p[1], err)
		}
	}
	bad := [][2]State{
		{StateSucceeded, StateQueued}, {StateSucceeded, StateFailed}, {StateCancelled, StateCopying},
		{StateQueued, StateCopying}, {StateCancelling, StateCopying}, {StateUnspecified, StateQueued},
	}
	for _, p := range bad {
		if err := CheckTransition(p[0], p[1]); err == nil {
			t.Errorf("%v -> %v allowed", p[0], p[1])
		}
	}
}

// Ids sort by creation time and have one shape.
func TestNewID(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var ids []string
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID(base.Add(time.Duration(i) * time.Millisecond))
		if !ValidID(id) || seen[id] {
			t.Fatalf("id %q invalid or repeated", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids do not sort by time")
	}
	for _, bad := range []string{"", "j-", "x-06h17qb0fqqqegajy7bay8dxrr", "j-06H17QB0FQQQEGAJY7BAY8DXRR", "j-06h17qb0fqqqegajy7bay8dxr"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q)", bad)
		}
	}
}

// The ClientToken is a pure function of job and attempt, within ECS's 64
// ASCII characters, so a resubmit after a crash sends the same one.
func TestToken(t *testing.T) {
	id := NewID(time.Now())
	first, again := Token(id, 1), Token(id, 1)
	if first != again || first == Token(id, 2) || len(Token(id, 999)) > 64 {
		t.Fatalf("tokens %q %q", Token(id, 1), Token(id, 2))
	}
}

func TestCloneIsDeep(t *testing.T) {
	j := &Job{Tags: map[string]string{"a": "1"}, Error: &Error{Code: "X"}, ShareAccounts: []string{"1"}, PostCopy: []Action{{Name: "share"}}}
	c := j.Clone()
	c.Tags["a"] = "2"
	c.Error.Code = "Y"
	c.ShareAccounts[0] = "2"
	c.PostCopy[0].Done = true
	if j.Tags["a"] != "1" || j.Error.Code != "X" || j.ShareAccounts[0] != "1" || j.PostCopy[0].Done {
		t.Fatalf("clone shares memory with the original: %+v", j)
	}
}

// EstimateProgress extrapolates ECS's last report of a COPYING job at the
// rate that report implies, within what ECS can say: never below the
// observed value, never 100 before ECS says so, the time left never
// negative; anything else passes ECS's values through.
func TestEstimateProgress(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	copying := func(p int32, r time.Duration) *Job {
		return &Job{State: StateCopying, ProgressPercent: p, Remaining: r, ProgressTime: at, UpdateTime: at.Add(time.Minute)}
	}
	for _, tc := range []struct {
		name    string
		j       *Job
		after   time.Duration
		pct     int32
		left    time.Duration
		isGuess bool
	}{
		{"at the report", copying(40, 10*time.Minute), 0, 40, 10 * time.Minute, false},
		{"clock behind the report", copying(40, 10*time.Minute), -time.Minute, 40, 10 * time.Minute, false},
		{"a quarter of the time left", copying(40, 10*time.Minute), 150 * time.Second, 55, 450 * time.Second, true},
		{"rounds down", copying(40, 10*time.Minute), 59 * time.Second, 45, 541 * time.Second, true},
		{"from 0%", copying(0, 100*time.Second), 30 * time.Second, 30, 70 * time.Second, true},
		{"just before the end", copying(40, 10*time.Minute), 10*time.Minute - time.Second, 99, time.Second, true},
		{"at the end: 99, any moment", copying(40, 10*time.Minute), 10 * time.Minute, 99, 0, true},
		{"long overdue: still 99, not negative", copying(40, 10*time.Minute), 3 * time.Hour, 99, 0, true},
		{"99 stays 99", copying(99, time.Minute), 30 * time.Second, 99, 30 * time.Second, true},
		{"no time left known", copying(40, 0), time.Minute, 40, 0, false},
		{"negative time left", copying(40, -time.Second), time.Minute, 40, -time.Second, false},
		{"100 from ECS", copying(100, time.Minute), time.Minute, 100, time.Minute, false},
		{"negative progress", copying(-1, time.Minute), time.Minute, -1, time.Minute, false},
		{"waiting", &Job{State: StateWaiting, ProgressPercent: 0, Remaining: time.Hour, ProgressTime: at}, time.Minute, 0, time.Hour, false},
		{"cancelling", &Job{State: StateCancelling, ProgressPercent: 30, Remaining: time.Hour, ProgressTime: at}, time.Minute, 30, time.Hour, false},
		{"succeeded", &Job{State: StateSucceeded, ProgressPercent: 100, ProgressTime: at}, time.Minute, 100, 0, false},
		// A record from before ProgressTime: UpdateTime is when ECS said it.
		{"no progress time", &Job{State: StateCopying, ProgressPercent: 50, Remaining: 100 * time.Second, UpdateTime: at}, 50 * time.Second, 75, 50 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pct, left, est := tc.j.EstimateProgress(at.Add(tc.after))
			if pct != tc.pct || left != tc.left || est != tc.isGuess {
				t.Errorf("EstimateProgress(+%v) = %d%%, %v, estimated %v; want %d%%, %v, %v", tc.after, pct, left, est, tc.pct, tc.left, tc.isGuess)
			}
		})
	}
}

// The estimate only grows with time and ends at 99 when the time is up.
func TestEstimateProgressMonotone(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	j := &Job{State: StateCopying, ProgressPercent: 13, Remaining: 7*time.Minute + 3*time.Second, ProgressTime: at}
	prevP, prevL := int32(0), j.Remaining+time.Second
	for s := 0; s <= 500; s++ {
		p, l, _ := j.EstimateProgress(at.Add(time.Duration(s) * time.Second))
		if p < prevP || l >= prevL && l != 0 || p < 13 || p > 99 || l < 0 {
			t.Fatalf("at +%ds: %d%% %v after %d%% %v", s, p, l, prevP, prevL)
		}
		prevP, prevL = p, l
	}
	if prevP != 99 || prevL != 0 {
		t.Fatalf("after the time left: %d%% %v, want 99%% 0s", prevP, prevL)
	}
}
