package ecsemu

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// imageStatuses are the Status filter values of DescribeImages.
var imageStatuses = map[string]bool{"Creating": true, "Waiting": true, "Available": true, "UnAvailable": true, "CreateFailed": true, "Deprecated": true}

type describeImagesBody struct {
	RequestId  string
	RegionId   string
	PageSize   int
	PageNumber int
	TotalCount int
	Images     struct{ Image []imageJSON }
}

// describeImages lists the images of a region, newest first. Filters
// follow the DescribeImages reference: ImageOwnerAlias (empty = every image
// but marketplace ones), Status (default Available, so Deprecated images
// are hidden unless asked for), OSType, Architecture, Usage, IsPublic,
// ImageOwnerId, the IsSupport… flags, Filter.N creation times, tags,
// ResourceGroupId (images of the default group are always shown) and
// DryRun. Invalid values answer the documented codes, in the order the
// parameters are read here (parseImageFilter, then paging and DryRun).
func describeImages(e *Emulator, c *call) (any, *apiError) {
	p := c.p
	regionID, aerr := requireRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	f, aerr := parseImageFilter(p)
	if aerr != nil {
		return nil, aerr
	}
	pageSize, aerr := parseInt(p, "PageSize", 10, 1, 100)
	if aerr != nil {
		return nil, aerr
	}
	pageNumber, aerr := parseInt(p, "PageNumber", 1, 1, 1<<30)
	if aerr != nil {
		return nil, aerr
	}
	dryRun, aerr := parseBool(p, "DryRun")
	if aerr != nil {
		return nil, aerr
	}
	if f.rg != "" && !resourceGroupRe.MatchString(f.rg) {
		return nil, newErr(http.StatusNotFound, "InvalidResourceGroup.NotFound", "The specified resource group does not exist.")
	}
	if dryRun {
		return nil, errDryRun()
	}

	candidates := make([]*image, 0, len(e.byRegion[regionID])+len(e.catalog[regionID]))
	for _, im := range e.byRegion[regionID] {
		candidates = append(candidates, im)
	}
	candidates = append(candidates, e.catalog[regionID]...)
	var match []*image
	for _, im := range candidates {
		if f.matches(im, c.now) {
			match = append(match, im)
		}
	}
	sort.Slice(match, func(i, j int) bool {
		a, b := match[i], match[j]
		if !a.CreationTime.Equal(b.CreationTime) {
			return a.CreationTime.After(b.CreationTime)
		}
		return a.ID < b.ID
	})
	body := describeImagesBody{RequestId: c.rid, RegionId: regionID, PageSize: pageSize, PageNumber: pageNumber, TotalCount: len(match)}
	body.Images.Image = []imageJSON{}
	if from := (pageNumber - 1) * pageSize; from < len(match) {
		for _, im := range match[from:min(from+pageSize, len(match))] {
			body.Images.Image = append(body.Images.Image, im.render(c.now))
		}
	}
	return body, nil
}

// imageFilter is what a DescribeImages request asks for; an empty field
// (owner -1, a nil flag, a zero time) does not filter.
type imageFilter struct {
	ids                        map[string]bool
	statuses                   map[string]bool
	alias, osType, arch, usage string
	owner                      int64
	flags                      map[string]*bool
	from, to                   time.Time
	tags                       []tagKV
	name, family, snapshot, rg string
}

// parseImageFilter reads and checks the filter parameters of
// DescribeImages (ResourceGroupId is checked by the caller, after DryRun).
func parseImageFilter(p params) (*imageFilter, *apiError) {
	f := &imageFilter{ids: map[string]bool{}, owner: -1}
	ids := splitList(p.get("ImageId"))
	if len(ids) > 100 {
		return nil, errInvalid("ImageId", "at most 100 image ids are allowed, got %d", len(ids))
	}
	for _, id := range ids {
		f.ids[id] = true
	}
	var aerr *apiError
	if f.statuses, aerr = parseStatusFilter(p); aerr != nil {
		return nil, aerr
	}
	if aerr = f.parseEnums(p); aerr != nil {
		return nil, aerr
	}
	if v := p.get("ImageOwnerId"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, errInvalid("ImageOwnerId", "%q is not an account id", truncate(v, 32))
		}
		f.owner = n
	}
	if f.flags, aerr = parseFlagFilters(p); aerr != nil {
		return nil, aerr
	}
	if f.from, f.to, aerr = parseCreationFilter(p); aerr != nil {
		return nil, aerr
	}
	if f.tags, aerr = parseTags(p, "Tag"); aerr != nil {
		return nil, aerr
	}
	f.name, f.family, f.snapshot, f.rg = p.get("ImageName"), p.get("ImageFamily"), p.get("SnapshotId"), p.get("ResourceGroupId")
	return f, nil
}

// parseStatusFilter reads Status: Available when absent.
func parseStatusFilter(p params) (map[string]bool, *apiError) {
	s := p.get("Status")
	if s == "" {
		return map[string]bool{"Available": true}, nil
	}
	statuses := map[string]bool{}
	for _, st := range splitList(s) {
		if !imageStatuses[st] {
			return nil, errInvalid("Status", "%q is not one of Creating, Waiting, Available, UnAvailable, CreateFailed, Deprecated", truncate(st, 32))
		}
		statuses[st] = true
	}
	return statuses, nil
}

// parseEnums reads ImageOwnerAlias, OSType, Architecture and Usage.
func (f *imageFilter) parseEnums(p params) *apiError {
	f.alias = p.get("ImageOwnerAlias")
	switch f.alias {
	case "", "self", "system", "others", "marketplace":
	default:
		return newErr(http.StatusBadRequest, "InvalidImageOwnerAlias.ValueNotSupported", "The specified ImageOwnerAlias %q is not one of self, system, others, marketplace.", truncate(f.alias, 32))
	}
	f.osType = p.get("OSType")
	switch f.osType {
	case "", "linux", "windows":
	default:
		return newErr(http.StatusNotFound, "InvalidOSType", "The specified OSType %q is not linux or windows.", truncate(f.osType, 32))
	}
	f.arch = p.get("Architecture")
	switch f.arch {
	case "", "i386", "x86_64", "arm64":
	default:
		return newErr(http.StatusNotFound, "InvalidArchitecture", "The specified Architecture %q is not i386, x86_64 or arm64.", truncate(f.arch, 32))
	}
	f.usage = p.get("Usage")
	switch f.usage {
	case "", "instance", "none":
	default:
		return newErr(http.StatusNotFound, "InvalidUsage", "The specified Usage %q is not instance or none.", truncate(f.usage, 32))
	}
	return nil
}

// parseFlagFilters reads the boolean filters that are present.
func parseFlagFilters(p params) (map[string]*bool, *apiError) {
	flags := map[string]*bool{}
	for _, name := range []string{"IsPublic", "IsSupportIoOptimized", "IsSupportCloudinit", "ShowExpired"} {
		if p.get(name) == "" {
			continue
		}
		v, aerr := parseBool(p, name)
		if aerr != nil {
			return nil, aerr
		}
		flags[name] = &v
	}
	return flags, nil
}

// matches reports whether im passes every filter of f at now.
func (f *imageFilter) matches(im *image, now time.Time) bool {
	return f.matchesListing(im, now) && f.matchesProperties(im) && f.matchesFlags(im)
}

// matchesListing: owner alias, status, ids, name, family, resource group.
func (f *imageFilter) matchesListing(im *image, now time.Time) bool {
	a := im.meta.alias()
	switch {
	case f.alias == "" && a == "marketplace", f.alias != "" && a != f.alias:
		return false
	}
	return f.statuses[im.status(now)] &&
		(len(f.ids) == 0 || f.ids[im.ID]) &&
		(f.name == "" || strings.Contains(im.Name, f.name)) &&
		(f.family == "" || im.Family == f.family) &&
		// The default resource group's images are listed whatever
		// group is asked for.
		(f.rg == "" || im.ResourceGroupID == f.rg || im.ResourceGroupID == "")
}

// matchesProperties: snapshot, OS, architecture, usage, owner account.
func (f *imageFilter) matchesProperties(im *image) bool {
	return (f.snapshot == "" || hasSnapshot(im, f.snapshot)) &&
		(f.osType == "" || im.os.Type == f.osType) &&
		(f.arch == "" || im.os.Arch == f.arch) &&
		(f.usage == "" || im.usage() == f.usage) &&
		(f.owner < 0 || im.ownerID() == f.owner)
}

// matchesFlags: the boolean filters, creation times and tags.
func (f *imageFilter) matchesFlags(im *image) bool {
	return flagIs(f.flags["IsPublic"], im.meta.Public) &&
		flagIs(f.flags["IsSupportIoOptimized"], !im.meta.NoIoOptimized) &&
		flagIs(f.flags["IsSupportCloudinit"], !im.meta.NoCloudinit) &&
		(f.from.IsZero() || !im.CreationTime.Before(f.from)) &&
		(f.to.IsZero() || !im.CreationTime.After(f.to)) &&
		hasTags(im, f.tags)
}

func flagIs(want *bool, v bool) bool { return want == nil || *want == v }

// filterTimeForm is the layout of the Filter.N creation times.
const filterTimeForm = "2006-01-02T15:04Z"

// parseCreationFilter reads Filter.N.Key/Value: CreationStartTime and
// CreationEndTime (yyyy-MM-ddTHH:mmZ, both ends included at minute
// precision) and NetworkType (vpc or classic; every emulated image is
// usable on both, so it only validates).
func parseCreationFilter(p params) (from, to time.Time, aerr *apiError) {
	for n := 1; ; n++ {
		k, v := p.get(fmt.Sprintf("Filter.%d.Key", n)), p.get(fmt.Sprintf("Filter.%d.Value", n))
		if k == "" && v == "" {
			if n > 1 || !hasPrefixKey(p, "Filter.") {
				return from, to, nil
			}
			return from, to, newErr(http.StatusNotFound, "InvalidFilterKey.NotFound", "Filter.N must count from 1.")
		}
		switch k {
		case "CreationStartTime", "CreationEndTime":
			t, err := time.Parse(filterTimeForm, v)
			if err != nil {
				return from, to, newErr(http.StatusNotFound, "InvalidFilterValue", "The value %q of %s is not yyyy-MM-ddTHH:mmZ.", truncate(v, 32), k)
			}
			if k == "CreationStartTime" {
				from = t
			} else {
				to = t.Add(time.Minute - time.Nanosecond)
			}
		case "NetworkType":
			if v != "vpc" && v != "classic" {
				return from, to, newErr(http.StatusBadRequest, "InvalidFilterValue.NetworkType", "The value %q of NetworkType is not vpc or classic.", truncate(v, 32))
			}
		default:
			return from, to, newErr(http.StatusNotFound, "InvalidFilterKey.NotFound", "The filter key %q is not CreationStartTime, CreationEndTime or NetworkType.", truncate(k, 32))
		}
		if n > 10 {
			return from, to, newErr(http.StatusBadRequest, "InvalidParameter", "At most 10 filters are allowed.")
		}
	}
}

func hasPrefixKey(p params, prefix string) bool {
	for k := range p {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func hasSnapshot(im *image, id string) bool {
	for _, d := range im.Disks {
		if d.SnapshotID == id {
			return true
		}
	}
	return false
}

// hasTags: every filter key present, with the given value if one was given.
func hasTags(im *image, tags []tagKV) bool {
	for _, t := range tags {
		v, ok := im.Tags[t.Key]
		if !ok || t.Value != "" && v != t.Value {
			return false
		}
	}
	return true
}

type regionJSON struct {
	RegionId       string
	LocalName      string
	RegionEndpoint string
	Status         string
}

type describeRegionsBody struct {
	RequestId string
	Regions   struct{ Region []regionJSON }
}

// describeRegions lists the emulated regions with their names in the
// AcceptLanguage DescribeRegions supports: zh-CN (the default), en-US, ja.
// Other values get the default, as no error is documented for them.
func describeRegions(e *Emulator, c *call) (any, *apiError) {
	lang := strings.ToLower(c.p.get("AcceptLanguage"))
	body := describeRegionsBody{RequestId: c.rid}
	for _, r := range regions {
		name := r.LocalName
		switch lang {
		case "en-us":
			name = r.EnName
		case "ja":
			name = r.JaName
		}
		body.Regions.Region = append(body.Regions.Region, regionJSON{RegionId: r.ID, LocalName: name, RegionEndpoint: r.Endpoint, Status: "available"})
	}
	return body, nil
}
