package failpoint

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHitFiresOnNthHit(t *testing.T) {
	fired := 0
	kill = func() { fired++ }
	armed = parse("a@2, b ,bad@x,c@0")
	hits = map[string]int{}
	for i := 0; i < 3; i++ {
		Hit("a")
	}
	if fired != 1 {
		t.Fatalf("a@2 fired %d times in 3 hits, want once", fired)
	}
	Hit("b")
	if fired != 2 {
		t.Fatalf("b did not fire on its first hit")
	}
	Hit("other")
	if fired != 2 {
		t.Fatalf("an unarmed point fired")
	}
	// Malformed counts fall back to the first hit rather than never firing.
	if armed["bad@x"] != 1 || armed["c@0"] != 1 {
		t.Fatalf("malformed specs parsed as %v", armed)
	}
}

func TestInertWithoutEnv(t *testing.T) {
	kill = func() { t.Fatal("killed with no points armed") }
	armed = parse("")
	Hit(BeforeCopyImage)
}

// TestPauseWaitsForRelease: NAME=pause does not kill; it announces the
// point in the directory and returns only once the release file exists.
func TestPauseWaitsForRelease(t *testing.T) {
	kill = func() { t.Error("a pause point killed") }
	spec := "p@2=pause,k"
	armed, paused, hits = parse(spec), parsePauses(spec), map[string]int{}
	if !paused["p"] || paused["k"] || armed["p"] != 2 {
		t.Fatalf("parsed armed %v paused %v", armed, paused)
	}
	dir := t.TempDir()
	t.Setenv(DirEnvVar, dir)
	Hit("p") // first hit: not armed yet
	done := make(chan struct{})
	go func() { Hit("p"); close(done) }()
	reached := filepath.Join(dir, "p.reached")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(reached); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pause point did not announce itself")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	select {
	case <-done:
		t.Fatal("the pause returned before its release")
	default:
	}
	if err := os.WriteFile(filepath.Join(dir, "p.release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the pause did not return after its release")
	}
}
