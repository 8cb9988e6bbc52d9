package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Every ECS action the SDK adapter sends is in ecsActions, so that its
// call and throttle counters exist at zero from the start.
func TestECSActionsListed(t *testing.T) {
	files, err := filepath.Glob("../../internal/cloud/aliyun/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("adapter sources: %v %v", files, err)
	}
	// The adapter names its actions with internal/cloud's constants.
	consts := map[string]string{}
	src, err := os.ReadFile("../../internal/cloud/cloud.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(Action[A-Za-z]+)\s*=\s*"([A-Za-z]+)"`).FindAllSubmatch(src, -1) {
		consts[string(m[1])] = string(m[2])
	}
	re := regexp.MustCompile(`p\.do\(ctx, (?:cloud\.(Action[A-Za-z]+)|"([A-Za-z]+)")`)
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			switch {
			case len(m[2]) > 0:
				seen[string(m[2])] = true
			case consts[string(m[1])] != "":
				seen[consts[string(m[1])]] = true
			default:
				t.Errorf("%s: cloud.%s is not a constant of internal/cloud/cloud.go", f, m[1])
			}
		}
	}
	var sent []string
	for a := range seen {
		sent = append(sent, a)
	}
	sort.Strings(sent)
	if len(sent) < 5 {
		t.Fatalf("found only %v in the adapter: the pattern no longer matches its calls", sent)
	}
	for _, a := range sent {
		if !slices.Contains(ecsActions, a) {
			t.Errorf("the adapter sends %s, which ecsActions lacks", a)
		}
	}
	for _, a := range ecsActions {
		if !seen[a] {
			t.Errorf("ecsActions lists %s, which the adapter never sends", a)
		}
	}
}
