package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Env is what the cloud says about the account, for the checks Parse
// cannot make alone.
type Env struct {
	// Regions the account can use (DescribeRegions); nil skips the check.
	Regions map[string]bool
	// Denied reports whether the account's compliance rule refuses copies
	// from src to dst; nil allows every route.
	Denied func(src, dst string) bool
}

// RuleMainlandOnly is the old ECS rule: copies only between regions of
// mainland China (cn-* but cn-hongkong).
const RuleMainlandOnly = "mainland-only"

// DeniedByRule returns the Env.Denied function of a simulated compliance
// rule and denied routes ("src>dst"), as the emulator applies them.
func DeniedByRule(rule string, routes []string) func(src, dst string) bool {
	denied := map[string]bool{}
	for _, r := range routes {
		denied[r] = true
	}
	return func(src, dst string) bool {
		if denied[src+">"+dst] {
			return true
		}
		if rule == RuleMainlandOnly {
			return isMainland(src) != isMainland(dst)
		}
		return false
	}
}

func isMainland(region string) bool {
	return strings.HasPrefix(region, "cn-") && region != "cn-hongkong"
}

// MergeErrors joins the problems of Parse (static) and ValidateEnv (the
// cloud's view) into one list in file order, so that a file is fixed in one
// pass. A cloud problem at the same place as a static one is dropped: the
// static one already says what is wrong there. Either may be nil; an error
// that is not a *ValidationErrors is returned as it is.
func MergeErrors(static, env error) error {
	if env == nil {
		return static
	}
	if static == nil {
		return env
	}
	se, ok1 := static.(*ValidationErrors)
	ee, ok2 := env.(*ValidationErrors)
	if !ok1 || !ok2 {
		return errors.Join(static, env)
	}
	type at struct{ line, col int }
	taken := map[at]bool{}
	out := &ValidationErrors{Errors: append([]ValidationError(nil), se.Errors...)}
	for _, e := range se.Errors {
		taken[at{e.Line, e.Column}] = true
	}
	for _, e := range ee.Errors {
		if e.Line != 0 && taken[at{e.Line, e.Column}] {
			continue
		}
		out.Errors = append(out.Errors, e)
	}
	return out.orNil()
}

// ValidateEnv checks every policy's regions against what the account can
// use: unknown regions and routes the compliance rule refuses. Problems
// carry the same file:line:column as Parse's.
func (f *File) ValidateEnv(env Env) error {
	es := &ValidationErrors{}
	add := func(p *Policy, at pos, format string, args ...any) {
		es.Errors = append(es.Errors, ValidationError{File: f.Path, Line: at.line, Column: at.col, Policy: p.Name, Message: fmt.Sprintf(format, args...)})
	}
	for i := range f.Policies {
		p := &f.Policies[i]
		c := p.c
		if c == nil {
			c = &compiled{}
		}
		srcOK := true
		if env.Regions != nil && p.Source.Region != "" && !env.Regions[p.Source.Region] {
			srcOK = false
			add(p, c.srcRegion, "source region %s is not a region this account can use%s", p.Source.Region, closestRegion(p.Source.Region, env.Regions))
		}
		for j, d := range p.Destinations {
			var at pos
			if j < len(c.dstRegion) {
				at = c.dstRegion[j]
			}
			if d.Region == "" {
				continue // a problem Parse already reported
			}
			if env.Regions != nil && !env.Regions[d.Region] {
				add(p, at, "destination region %s is not a region this account can use%s", d.Region, closestRegion(d.Region, env.Regions))
				continue
			}
			if srcOK && env.Denied != nil && env.Denied(p.Source.Region, d.Region) {
				add(p, at, "copies from %s to %s are refused by the account's compliance rule (OperationDenied.NonCompliantDestinationRegion)", p.Source.Region, d.Region)
			}
		}
	}
	if env.Regions != nil {
		for _, r := range sortedRegionSlots(f.Scheduler.RegionSlots) {
			if !env.Regions[r] {
				es.Errors = append(es.Errors, ValidationError{File: f.Path, Message: fmt.Sprintf("scheduler.region_slots: %s is not a region this account can use%s", r, closestRegion(r, env.Regions))})
			}
		}
		for _, r := range sortedKeys(f.Cloud.Endpoints) {
			if !env.Regions[r] {
				es.Errors = append(es.Errors, ValidationError{File: f.Path, Message: fmt.Sprintf("cloud.endpoints: %s is not a region this account can use%s", r, closestRegion(r, env.Regions))})
			}
		}
	}
	return es.orNil()
}

func sortedRegionSlots(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// closestRegion suggests a known region when r looks like a typo of one.
func closestRegion(r string, regions map[string]bool) string {
	best, bestD := "", 3
	for k := range regions {
		if dist := levenshtein(r, k); dist < bestD || dist == bestD && best != "" && k < best {
			best, bestD = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}
