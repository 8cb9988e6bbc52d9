package ecsemu

import (
	"net/http"
	"sort"
	"time"
)

const (
	maxSharesPerCall  = 10
	maxSharesPerImage = 50
)

// modifyImageAttribute changes ImageName, Description, ImageFamily,
// BootMode and Status: Deprecated hides an Available image from the default
// listing (Status=Deprecated lists it) and stops it from being copied or
// shared; Available restores it.
func modifyImageAttribute(e *Emulator, c *call) (any, *apiError) {
	regionID, aerr := requireRegion(c.p)
	if aerr != nil {
		return nil, aerr
	}
	id, aerr := require(c.p, "ImageId")
	if aerr != nil {
		return nil, aerr
	}
	im := e.imageIn(regionID, id)
	if im == nil {
		return nil, errImageNotFound(id)
	}
	a := attributeChange{
		name: c.p.get("ImageName"), desc: c.p.get("Description"), family: c.p.get("ImageFamily"),
		status: c.p.get("Status"), boot: c.p.get("BootMode"),
	}
	if aerr := a.checkState(im, c.now); aerr != nil {
		return nil, aerr
	}
	if aerr := a.checkText(e, regionID, im); aerr != nil {
		return nil, aerr
	}
	a.apply(im)
	return requestIDBody{RequestId: c.rid}, nil
}

// attributeChange is a ModifyImageAttribute request; "" leaves a field.
type attributeChange struct {
	name, desc, family, status, boot string
}

// checkState checks Status (against the image's) and BootMode.
func (a attributeChange) checkState(im *image, now time.Time) *apiError {
	switch a.status {
	case "", "Available", "Deprecated":
	default:
		return errInvalid("Status", "%q is not Deprecated or Available", truncate(a.status, 32))
	}
	if a.status != "" {
		// Only a finished image can be deprecated or restored.
		if s := im.status(now); s != "Available" && s != "Deprecated" {
			return newErr(http.StatusBadRequest, "IncorrectImageStatus", "The image is %s; only Available or Deprecated images change status.", s)
		}
	}
	switch a.boot {
	case "", "BIOS", "UEFI", "UEFI-Preferred":
	default:
		return errInvalid("BootMode", "%q is not BIOS, UEFI or UEFI-Preferred", truncate(a.boot, 32))
	}
	return nil
}

// checkText checks the name (free in the region), description and family.
func (a attributeChange) checkText(e *Emulator, regionID string, im *image) *apiError {
	if a.name != "" {
		if aerr := checkImageName(a.name); aerr != nil {
			return aerr
		}
		if e.nameTaken(regionID, a.name, im) {
			return newErr(http.StatusBadRequest, "InvalidImageName.Duplicated", "The specified image name is already in use in this region.")
		}
	}
	if a.desc != "" {
		if aerr := checkDescription(a.desc); aerr != nil {
			return aerr
		}
	}
	if a.family != "" {
		if aerr := checkFamily(a.family); aerr != nil {
			return aerr
		}
	}
	return nil
}

func (a attributeChange) apply(im *image) {
	if a.name != "" {
		im.Name = a.name
	}
	if a.desc != "" {
		im.Description = a.desc
	}
	if a.family != "" {
		im.Family = a.family
	}
	switch a.status {
	case "Deprecated":
		im.meta.Deprecated = true
	case "Available":
		im.meta.Deprecated = false
		if im.fixedStatus == "Deprecated" {
			im.fixedStatus = "Available"
		}
	}
	if a.boot != "" {
		im.meta.BootMode = a.boot
	}
}

// modifyImageSharePermission shares an image with, or unshares it from,
// other accounts: AddAccount.N / RemoveAccount.N, ten per call (further
// indices are ignored, as documented), 50 accounts per image. The request
// is read (parseShareChange), checked against the image (refused), then
// applied.
func modifyImageSharePermission(e *Emulator, c *call) (any, *apiError) {
	regionID, aerr := requireRegion(c.p)
	if aerr != nil {
		return nil, aerr
	}
	id, aerr := require(c.p, "ImageId")
	if aerr != nil {
		return nil, aerr
	}
	im := e.imageIn(regionID, id)
	if im == nil {
		return nil, errImageNotFound(id)
	}
	sc, aerr := parseShareChange(c.p)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := sc.refused(im, c.now); aerr != nil {
		return nil, aerr
	}
	next := map[string]time.Time{}
	for k, v := range im.shared {
		next[k] = v
	}
	for _, a := range sc.add {
		if _, ok := next[a]; !ok {
			next[a] = c.now.UTC().Truncate(time.Second)
		}
	}
	for _, r := range sc.remove {
		delete(next, r)
	}
	if len(next) > maxSharesPerImage {
		return nil, newErr(http.StatusForbidden, "QuotaExceed.ShareImageUser", "The number of accounts an image is shared with exceeds the limit (%d).", maxSharesPerImage)
	}
	im.shared = next
	if sc.public != "" {
		im.meta.Public = sc.makePublic
	}
	return requestIDBody{RequestId: c.rid}, nil
}

// shareChange is a ModifyImageSharePermission request, its accounts checked.
type shareChange struct {
	add, remove []string
	public      string // IsPublic as given ("" when absent)
	makePublic  bool
}

func parseShareChange(p params) (*shareChange, *apiError) {
	sc := &shareChange{}
	var aerr *apiError
	if sc.add, aerr = parseList(p, "AddAccount", maxSharesPerCall, true); aerr != nil {
		return nil, aerr
	}
	if sc.remove, aerr = parseList(p, "RemoveAccount", maxSharesPerCall, true); aerr != nil {
		return nil, aerr
	}
	for _, acct := range append(append([]string{}, sc.add...), sc.remove...) {
		if !accountID(acct) {
			return nil, newErr(http.StatusBadRequest, "InvalidAccount.NotFound", "The specified account %q does not exist.", truncate(acct, 32))
		}
	}
	if sc.public = p.get("IsPublic"); sc.public != "" {
		if sc.makePublic, aerr = parseBool(p, "IsPublic"); aerr != nil {
			return nil, aerr
		}
	}
	return sc, nil
}

// refused checks the change against the image: only Available images are
// shared, encrypted ones are never public, community images are not
// shared with accounts.
func (sc *shareChange) refused(im *image, now time.Time) *apiError {
	if (len(sc.add) > 0 || sc.makePublic) && im.status(now) != "Available" {
		return newErr(http.StatusBadRequest, "IncorrectImageStatus", "Only Available images can be shared.")
	}
	if sc.makePublic && im.Encrypted {
		return newErr(http.StatusForbidden, "InvalidImage.Encrypted", "Encrypted images cannot be published as community images.")
	}
	if len(sc.add) > 0 && (sc.makePublic || im.meta.Public && sc.public != "false") {
		return newErr(http.StatusBadRequest, "OperationDenied.CommunityImage", "Community images cannot be shared with accounts.")
	}
	return nil
}

func accountID(s string) bool {
	if len(s) < 1 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

type shareAccountJSON struct {
	AliyunId   string
	SharedTime string
}

type describeImageSharePermissionBody struct {
	RequestId   string
	RegionId    string
	ImageId     string
	PageSize    int
	PageNumber  int
	TotalCount  int
	ShareGroups struct{ ShareGroup []struct{ Group string } }
	Accounts    struct{ Account []shareAccountJSON }
}

// describeImageSharePermission lists the accounts an image is shared with.
func describeImageSharePermission(e *Emulator, c *call) (any, *apiError) {
	regionID, aerr := requireRegion(c.p)
	if aerr != nil {
		return nil, aerr
	}
	id, aerr := require(c.p, "ImageId")
	if aerr != nil {
		return nil, aerr
	}
	im := e.imageIn(regionID, id)
	if im == nil {
		return nil, errImageNotFound(id)
	}
	pageSize, aerr := parseInt(c.p, "PageSize", 10, 1, 100)
	if aerr != nil {
		return nil, aerr
	}
	pageNumber, aerr := parseInt(c.p, "PageNumber", 1, 1, 1<<30)
	if aerr != nil {
		return nil, aerr
	}
	accts := make([]shareAccountJSON, 0, len(im.shared))
	for a, t := range im.shared {
		accts = append(accts, shareAccountJSON{AliyunId: a, SharedTime: t.Format(timestampForm)})
	}
	sort.Slice(accts, func(i, j int) bool { return accts[i].AliyunId < accts[j].AliyunId })
	body := describeImageSharePermissionBody{RequestId: c.rid, RegionId: regionID, ImageId: im.ID, PageSize: pageSize, PageNumber: pageNumber, TotalCount: len(accts)}
	body.ShareGroups.ShareGroup = []struct{ Group string }{}
	body.Accounts.Account = []shareAccountJSON{}
	if from := (pageNumber - 1) * pageSize; from < len(accts) {
		body.Accounts.Account = accts[from:min(from+pageSize, len(accts))]
	}
	return body, nil
}
