package policy

import (
	"strings"
	"testing"
)

func TestValidateEnv(t *testing.T) {
	f, err := Parse("policies.yaml", []byte(`version: 1
scheduler:
  region_slots: {cn-nowhere: 2}
policies:
  - name: a
    source: {region: cn-hangzhou, images: {name: "*"}}
    destinations:
      - region: cn-shanghia
      - region: ap-southeast-1
      - region: cn-beijing
  - name: b
    source: {region: us-nowhere-9, images: {name: "*"}}
    destinations: [ap-southeast-1]
`))
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]bool{"cn-hangzhou": true, "cn-shanghai": true, "cn-beijing": true, "ap-southeast-1": true}
	err = f.ValidateEnv(Env{Regions: regions, Denied: DeniedByRule(RuleMainlandOnly, nil)})
	want := []string{
		`policies.yaml: scheduler.region_slots: cn-nowhere is not a region this account can use`,
		`policies.yaml:8:17: policy "a": destination region cn-shanghia is not a region this account can use (did you mean cn-shanghai?)`,
		`policies.yaml:9:17: policy "a": copies from cn-hangzhou to ap-southeast-1 are refused by the account's compliance rule (OperationDenied.NonCompliantDestinationRegion)`,
		`policies.yaml:12:22: policy "b": source region us-nowhere-9 is not a region this account can use`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	// Nothing to check against: no problems.
	if err := f.ValidateEnv(Env{}); err != nil {
		t.Errorf("empty env: %v", err)
	}
}

func TestDeniedByRule(t *testing.T) {
	deny := DeniedByRule(RuleMainlandOnly, []string{"cn-hangzhou>cn-beijing"})
	for _, tc := range []struct {
		src, dst string
		want     bool
	}{
		{"cn-hangzhou", "cn-shanghai", false},
		{"cn-hangzhou", "cn-beijing", true}, // denied route
		{"cn-hangzhou", "cn-hongkong", true},
		{"cn-hangzhou", "ap-southeast-1", true},
		{"ap-southeast-1", "us-west-1", false},
		{"cn-hongkong", "ap-southeast-1", false},
	} {
		if got := deny(tc.src, tc.dst); got != tc.want {
			t.Errorf("%s>%s: got %v", tc.src, tc.dst, got)
		}
	}
	if DeniedByRule("", nil)("cn-hangzhou", "us-west-1") {
		t.Error("no rule denies")
	}
}

func TestDiff(t *testing.T) {
	parse := func(s string) *File {
		t.Helper()
		f, err := Parse("p.yaml", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	const a = "  - name: a\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n"
	const b = "  - name: b\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n"
	const c = "  - name: c\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n"
	const c2 = "  - name: c\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n    priority: 3\n"
	old := parse("version: 1\npolicies:\n" + a + b + c)
	// a moves down the file (positions change, meaning does not), b goes, c
	// changes, d arrives.
	const d = "  - name: d\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n"
	new := parse("version: 1\n# moved\n\npolicies:\n" + c2 + d + a)
	added, removed, changed := Diff(old, new)
	if strings.Join(added, ",") != "d" || strings.Join(removed, ",") != "b" || strings.Join(changed, ",") != "c" {
		t.Errorf("added %v removed %v changed %v", added, removed, changed)
	}
	added, removed, changed = Diff(nil, old)
	if strings.Join(added, ",") != "a,b,c" || removed != nil || changed != nil {
		t.Errorf("from nothing: added %v removed %v changed %v", added, removed, changed)
	}
}
