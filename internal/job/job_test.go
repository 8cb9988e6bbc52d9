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
