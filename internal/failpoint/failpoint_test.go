package failpoint

import "testing"

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
