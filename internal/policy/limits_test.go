package policy

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestBillionLaughs(t *testing.T) {
	// Merge keys fanning out ten ways per level: 10^9 expansions if
	// followed naively.
	var b strings.Builder
	b.WriteString("version: 1\nx-l0: &l0 {interval: 10m}\n")
	for i := 1; i <= 9; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", ")
		fmt.Fprintf(&b, "x-l%d: &l%d {<<: [%s]}\n", i, i, refs)
	}
	b.WriteString("policies:\n  - <<: *l9\n    name: a\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n")
	var err error
	mem := allocated(func() { _, err = Parse("bomb.yaml", []byte(b.String())) })
	if err == nil || !strings.Contains(err.Error(), "merge keys (<<) nested too deeply") {
		t.Fatalf("err = %v", err)
	}
	if mem > 64<<20 {
		t.Errorf("parsing the bomb allocated %d MiB", mem>>20)
	}

	// Too many policies.
	b.Reset()
	b.WriteString("version: 1\nx-p: &p {name: a, source: {region: cn-hangzhou, images: {name: \"*\"}}, destinations: [cn-beijing]}\npolicies: [")
	b.WriteString(strings.TrimSuffix(strings.Repeat("*p,", 50_000), ","))
	b.WriteString("]\n")
	mem = allocated(func() { _, err = Parse("bomb.yaml", []byte(b.String())) })
	if err == nil || err.Error() != "bomb.yaml:3:11: policies: 50000 policies is more than the 1000 one file may hold" {
		t.Fatalf("err = %.500v", err)
	}
	if mem > 128<<20 {
		t.Errorf("parsing 50000 aliases allocated %d MiB", mem>>20)
	}

	// Aliases to a big policy, each expanded: the node budget stops it.
	b.Reset()
	b.WriteString("version: 1\nx-ids: &ids [")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "m-bp1%016d, ", i)
	}
	b.WriteString("]\nx-p: &p {source: {region: cn-hangzhou, images: {ids: *ids}}, destinations: [cn-beijing]}\npolicies: [")
	b.WriteString(strings.TrimSuffix(strings.Repeat("*p,", 900), ","))
	b.WriteString("]\n")
	mem = allocated(func() { _, err = Parse("bomb.yaml", []byte(b.String())) })
	if err == nil || !strings.Contains(err.Error(), "bomb.yaml: the file expands to more than 100000 YAML nodes (through aliases?); refusing it") {
		t.Fatalf("err = %.500v", err)
	}
	if mem > 128<<20 {
		t.Errorf("parsing the alias list allocated %d MiB", mem>>20)
	}
}

func TestDeepNesting(t *testing.T) {
	data := "version: 1\nx-deep: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n"
	_, err := Parse("deep.yaml", []byte(data))
	if err == nil || err.Error() != "deep.yaml:2:72: the file nests deeper than 64 levels" {
		t.Fatalf("err = %v", err)
	}
	data = "version: 1\nx-deep: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n"
	_, err = Parse("deep.yaml", []byte(data))
	if err == nil || err.Error() != "deep.yaml:2:1: YAML syntax error: exceeded max depth of 10000" {
		t.Fatalf("err = %v", err)
	}
}

func TestTooManyProblems(t *testing.T) {
	data := "version: 1\n" + strings.Repeat("zz: 1\n", 500)
	_, err := Parse("p.yaml", []byte(data))
	var ve *ValidationErrors
	if err == nil || !asValidation(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	if len(ve.Errors) != MaxErrors+1 || ve.Errors[MaxErrors].Message != "... and 400 more problems" {
		t.Errorf("%d problems, last %q", len(ve.Errors), ve.Errors[len(ve.Errors)-1].Message)
	}
}

func asValidation(err error, ve **ValidationErrors) bool {
	v, ok := err.(*ValidationErrors)
	*ve = v
	return ok
}
