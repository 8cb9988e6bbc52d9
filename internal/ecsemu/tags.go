package ecsemu

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

const (
	maxTagResources  = 50
	listTagsPageSize = 50
)

// taggedImages reads ResourceType (must be image) and ResourceId.N, and
// returns the images, all of which must exist in the region.
func (e *Emulator) taggedImages(p params, regionID string, required bool) ([]*image, *apiError) {
	rt, aerr := require(p, "ResourceType")
	if aerr != nil {
		return nil, aerr
	}
	if !strings.EqualFold(rt, "image") {
		return nil, newErr(http.StatusBadRequest, "InvalidResourceType.NotSupported", "The specified ResourceType %q is not supported by the emulator; use image.", truncate(rt, 32))
	}
	ids, aerr := parseList(p, "ResourceId", maxTagResources, false)
	if aerr != nil {
		return nil, aerr
	}
	if required && len(ids) == 0 {
		return nil, errMissing("ResourceId.1")
	}
	out := make([]*image, 0, len(ids))
	for _, id := range ids {
		im := e.imageIn(regionID, id)
		if im == nil {
			return nil, newErr(http.StatusNotFound, "InvalidResourceId.NotFound", "The specified resource %s does not exist.", truncate(id, 64))
		}
		out = append(out, im)
	}
	return out, nil
}

// tagResources adds or overwrites tags on images, all or none.
func tagResources(e *Emulator, c *call) (any, *apiError) {
	regionID, aerr := requireRegion(c.p)
	if aerr != nil {
		return nil, aerr
	}
	ims, aerr := e.taggedImages(c.p, regionID, true)
	if aerr != nil {
		return nil, aerr
	}
	tags, aerr := parseTags(c.p, "Tag")
	if aerr != nil {
		return nil, aerr
	}
	if len(tags) == 0 {
		return nil, errMissing("Tag.1.Key")
	}
	for _, im := range ims {
		n := len(im.Tags)
		for _, t := range tags {
			if _, ok := im.Tags[t.Key]; !ok {
				n++
			}
		}
		if n > maxTagsPerResource {
			return nil, newErr(http.StatusBadRequest, "InvalidTagCount", "The number of tags on %s would exceed the limit (%d).", im.ID, maxTagsPerResource)
		}
	}
	for _, im := range ims {
		for _, t := range tags {
			im.Tags[t.Key] = t.Value
		}
	}
	return requestIDBody{RequestId: c.rid}, nil
}

// untagResources removes the TagKey.N tags, or all tags with All=true
// when no key is given.
func untagResources(e *Emulator, c *call) (any, *apiError) {
	regionID, aerr := requireRegion(c.p)
	if aerr != nil {
		return nil, aerr
	}
	ims, aerr := e.taggedImages(c.p, regionID, true)
	if aerr != nil {
		return nil, aerr
	}
	keys, aerr := parseList(c.p, "TagKey", maxTagsPerResource, false)
	if aerr != nil {
		return nil, aerr
	}
	all, aerr := parseBool(c.p, "All")
	if aerr != nil {
		return nil, aerr
	}
	for _, im := range ims {
		if len(keys) == 0 && all {
			im.Tags = map[string]string{}
		}
		for _, k := range keys {
			delete(im.Tags, k)
		}
	}
	return requestIDBody{RequestId: c.rid}, nil
}

type tagResourceJSON struct {
	ResourceId   string
	ResourceType string
	TagKey       string
	TagValue     string
}

type listTagResourcesBody struct {
	RequestId    string
	NextToken    string
	TagResources struct{ TagResource []tagResourceJSON }
}

// listTagResources lists the tags of the given images, or of every image
// of the region carrying all Tag.N filters; 50 per page with NextToken.
func listTagResources(e *Emulator, c *call) (any, *apiError) {
	regionID, aerr := requireRegion(c.p)
	if aerr != nil {
		return nil, aerr
	}
	ims, aerr := e.taggedImages(c.p, regionID, false)
	if aerr != nil {
		return nil, aerr
	}
	filters, aerr := parseTags(c.p, "Tag")
	if aerr != nil {
		return nil, aerr
	}
	offset := 0
	if tok := c.p.get("NextToken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 {
			return nil, errInvalid("NextToken", "it is not a token this API returned")
		}
		offset = n
	}
	if len(ims) == 0 {
		for _, im := range e.byRegion[regionID] {
			ims = append(ims, im)
		}
	}
	var items []tagResourceJSON
	for _, im := range ims {
		if !hasTags(im, filters) {
			continue
		}
		for _, t := range sortedTags(im.Tags) {
			items = append(items, tagResourceJSON{ResourceId: im.ID, ResourceType: "image", TagKey: t.TagKey, TagValue: t.TagValue})
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].ResourceId != items[j].ResourceId {
			return items[i].ResourceId < items[j].ResourceId
		}
		return items[i].TagKey < items[j].TagKey
	})
	body := listTagResourcesBody{RequestId: c.rid}
	body.TagResources.TagResource = []tagResourceJSON{}
	if offset < len(items) {
		end := min(offset+listTagsPageSize, len(items))
		body.TagResources.TagResource = items[offset:end]
		if end < len(items) {
			body.NextToken = strconv.Itoa(end)
		}
	}
	return body, nil
}
