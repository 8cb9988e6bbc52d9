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
	name, desc, family := c.p.get("ImageName"), c.p.get("Description"), c.p.get("ImageFamily")
	status, boot := c.p.get("Status"), c.p.get("BootMode")
	switch status {
	case "", "Available", "Deprecated":
	default:
		return nil, errInvalid("Status", "%q is not Deprecated or Available", truncate(status, 32))
	}
	if status != "" {
		// Only a finished image can be deprecated or restored.
		if s := im.status(c.now); s != "Available" && s != "Deprecated" {
			return nil, newErr(http.StatusBadRequest, "IncorrectImageStatus", "The image is %s; only Available or Deprecated images change status.", s)
		}
	}
	switch boot {
	case "", "BIOS", "UEFI", "UEFI-Preferred":
	default:
		return nil, errInvalid("BootMode", "%q is not BIOS, UEFI or UEFI-Preferred", truncate(boot, 32))
	}
	if name != "" {
		if aerr := checkImageName(name); aerr != nil {
			return nil, aerr
		}
		if e.nameTaken(regionID, name, im) {
			return nil, newErr(http.StatusBadRequest, "InvalidImageName.Duplicated", "The specified image name is already in use in this region.")
		}
	}
	if desc != "" {
		if aerr := checkDescription(desc); aerr != nil {
			return nil, aerr
		}
	}
	if family != "" {
		if aerr := checkFamily(family); aerr != nil {
			return nil, aerr
		}
	}
	if name != "" {
		im.Name = name
	}
	if desc != "" {
		im.Description = desc
	}
	if family != "" {
		im.Family = family
	}
	switch status {
	case "Deprecated":
		im.meta.Deprecated = true
	case "Available":
		im.meta.Deprecated = false
		if im.fixedStatus == "Deprecated" {
			im.fixedStatus = "Available"
		}
	}
	if boot != "" {
		im.meta.BootMode = boot
	}
	return requestIDBody{RequestId: c.rid}, nil
}

// modifyImageSharePermission shares an image with, or unshares it from,
// other accounts: AddAccount.N / RemoveAccount.N, ten per call (further
// indices are ignored, as documented), 50 accounts per image.
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
	add, aerr := parseList(c.p, "AddAccount", maxSharesPerCall, true)
	if aerr != nil {
		return nil, aerr
	}
	remove, aerr := parseList(c.p, "RemoveAccount", maxSharesPerCall, true)
	if aerr != nil {
		return nil, aerr
	}
	for _, acct := range append(append([]string{}, add...), remove...) {
		if !accountID(acct) {
			return nil, newErr(http.StatusBadRequest, "InvalidAccount.NotFound", "The specified account %q does not exist.", truncate(acct, 32))
		}
	}
	public := c.p.get("IsPublic")
	var makePublic bool
	if public != "" {
		v, aerr := parseBool(c.p, "IsPublic")
		if aerr != nil {
			return nil, aerr
		}
		makePublic = v
	}
	if (len(add) > 0 || makePublic) && im.status(c.now) != "Available" {
		return nil, newErr(http.StatusBadRequest, "IncorrectImageStatus", "Only Available images can be shared.")
	}
	if makePublic && im.Encrypted {
		return nil, newErr(http.StatusForbidden, "InvalidImage.Encrypted", "Encrypted images cannot be published as community images.")
	}
	if len(add) > 0 && (makePublic || im.meta.Public && public != "false") {
		return nil, newErr(http.StatusBadRequest, "OperationDenied.CommunityImage", "Community images cannot be shared with accounts.")
	}
	next := map[string]time.Time{}
	for k, v := range im.shared {
		next[k] = v
	}
	for _, a := range add {
		if _, ok := next[a]; !ok {
			next[a] = c.now.UTC().Truncate(time.Second)
		}
	}
	for _, r := range remove {
		delete(next, r)
	}
	if len(next) > maxSharesPerImage {
		return nil, newErr(http.StatusForbidden, "QuotaExceed.ShareImageUser", "The number of accounts an image is shared with exceeds the limit (%d).", maxSharesPerImage)
	}
	im.shared = next
	if public != "" {
		im.meta.Public = makePublic
	}
	return requestIDBody{RequestId: c.rid}, nil
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
