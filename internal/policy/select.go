package policy

import (
	"path"
	"sort"

	"github.com/replicatord/replicatord/internal/cloud"
)

// Select returns the images the policy's selectors choose, newest first
// (by CreationTime, then by id, so that the order is deterministic). Every
// selector given must match; an image matching any exclude criterion is
// dropped; newest N keeps the N newest that remain. Select looks only at
// ids, names, tags and times: the status of a source is the planner's
// business.
func (p *Policy) Select(images []cloud.Image) []cloud.Image {
	var out []cloud.Image
	seen := map[string]bool{}
	for _, im := range images {
		if seen[im.ID] || !p.Source.Images.matchAll(im) || p.Source.Exclude.matchAny(im) {
			continue
		}
		seen[im.ID] = true
		out = append(out, im)
	}
	sortNewestFirst(out)
	if n := p.Source.Images.Newest; n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

func sortNewestFirst(ims []cloud.Image) {
	sort.SliceStable(ims, func(i, j int) bool {
		if !ims[i].CreationTime.Equal(ims[j].CreationTime) {
			return ims[i].CreationTime.After(ims[j].CreationTime)
		}
		return ims[i].ID < ims[j].ID
	})
}

func (s Selector) matchAll(im cloud.Image) bool {
	if s.empty() {
		return false // a policy must choose its images; Parse refuses empty selectors
	}
	if len(s.IDs) > 0 && !containsStr(s.IDs, im.ID) {
		return false
	}
	if s.Name != "" && !globMatch(s.Name, im.Name) {
		return false
	}
	return hasTags(im.Tags, s.Tags)
}

func (s Selector) matchAny(im cloud.Image) bool {
	if len(s.IDs) > 0 && containsStr(s.IDs, im.ID) {
		return true
	}
	if s.Name != "" && globMatch(s.Name, im.Name) {
		return true
	}
	return len(s.Tags) > 0 && hasTags(im.Tags, s.Tags)
}

func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

func hasTags(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
