package state_test

import (
	"path/filepath"
	"testing"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/state/statetest"
)

// TestStoreSuite runs the backend-neutral Store contract against the bbolt
// store. After each test the file must also pass Check: every index agrees
// with jobs/, events/ is contiguous, request records name existing jobs.
func TestStoreSuite(t *testing.T) {
	statetest.Run(t, statetest.Backend{
		Open: func(t *testing.T, clk clock.Clock) state.Store {
			path := filepath.Join(t.TempDir(), "state.db")
			return openChecked(t, path, clk)
		},
		Reopen: func(t *testing.T, s state.Store, clk clock.Clock) state.Store {
			db := s.(*state.DB)
			if err := db.Close(); err != nil {
				t.Fatalf("Close before reopen: %v", err)
			}
			return openChecked(t, db.Path(), clk)
		},
	})
}

// openChecked opens path and, when the test ends, closes it and runs Check.
func openChecked(t *testing.T, path string, clk clock.Clock) *state.DB {
	t.Helper()
	d, err := state.Open(path, state.Options{Clock: clk})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := state.Check(path); err != nil {
			t.Errorf("Check after the test: %v", err)
		}
	})
	return d
}
