package ecsemu

import (
	"net/http"
	"sort"
	"strings"
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

// describeImages lists the images of a region, newest first.
func describeImages(e *Emulator, c *call) (any, *apiError) {
	p := c.p
	regionID, aerr := requireRegion(p)
	if aerr != nil {
		return nil, aerr
	}
	ids := splitList(p.get("ImageId"))
	if len(ids) > 100 {
		return nil, errInvalid("ImageId", "at most 100 image ids are allowed, got %d", len(ids))
	}
	statuses := map[string]bool{"Available": true}
	if s := p.get("Status"); s != "" {
		statuses = map[string]bool{}
		for _, st := range splitList(s) {
			if !imageStatuses[st] {
				return nil, errInvalid("Status", "%q is not one of Creating, Waiting, Available, UnAvailable, CreateFailed, Deprecated", truncate(st, 32))
			}
			statuses[st] = true
		}
	}
	alias := p.get("ImageOwnerAlias")
	switch alias {
	case "", "self", "system", "others", "marketplace":
	default:
		return nil, newErr(http.StatusBadRequest, "InvalidImageOwnerAlias.ValueNotSupported", "The specified ImageOwnerAlias %q is not one of self, system, others, marketplace.", truncate(alias, 32))
	}
	tags, aerr := parseTags(p, "Tag")
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
	name, family, snapshot, rg := p.get("ImageName"), p.get("ImageFamily"), p.get("SnapshotId"), p.get("ResourceGroupId")
	idSet := map[string]bool{}
	for _, id := range ids {
		idSet[id] = true
	}

	var match []*image
	// Every emulated image belongs to the caller (self); the other owner
	// aliases therefore list nothing.
	if alias == "" || alias == "self" {
		for _, im := range e.byRegion[regionID] {
			if !statuses[im.status(c.now)] ||
				len(idSet) > 0 && !idSet[im.ID] ||
				name != "" && !strings.Contains(im.Name, name) ||
				family != "" && im.Family != family ||
				rg != "" && im.ResourceGroupID != rg ||
				snapshot != "" && !hasSnapshot(im, snapshot) ||
				!hasTags(im, tags) {
				continue
			}
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

// describeRegions lists the emulated regions; AcceptLanguage=en-US gives
// English names, anything else the Chinese ones (the ECS default).
func describeRegions(e *Emulator, c *call) (any, *apiError) {
	english := strings.EqualFold(c.p.get("AcceptLanguage"), "en-US")
	body := describeRegionsBody{RequestId: c.rid}
	for _, r := range regions {
		name := r.LocalName
		if english {
			name = r.EnName
		}
		body.Regions.Region = append(body.Regions.Region, regionJSON{RegionId: r.ID, LocalName: name, RegionEndpoint: r.Endpoint, Status: "available"})
	}
	return body, nil
}
