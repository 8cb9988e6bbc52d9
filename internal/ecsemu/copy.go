package ecsemu

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"slices"
	"time"
)

var resourceGroupRe = regexp.MustCompile(`^rg-[0-9a-z]{6,30}$`)

// Parameters that do not take part in a ClientToken's fingerprint: the
// common ones, which change on every retry, and the token itself.
var notFingerprinted = map[string]bool{
	"AccessKeyId": true, "Action": true, "Format": true, "Version": true, "Signature": true,
	"SignatureMethod": true, "SignatureNonce": true, "SignatureType": true, "SignatureVersion": true,
	"Timestamp": true, "SecurityToken": true, "ClientToken": true, "DryRun": true,
}

func fingerprint(p params) string {
	h := sha256.New()
	for _, k := range sortedKeys(p) {
		if !notFingerprinted[k] {
			h.Write([]byte(k + "\x00" + p[k] + "\x01"))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

type copyImageBody struct {
	RequestId string
	ImageId   string
}

// copyImage starts a copy of a custom image into another region.
func copyImage(e *Emulator, c *call) (any, *apiError) {
	p := c.p
	srcRegion, aerr := require(p, "RegionId")
	if aerr != nil {
		return nil, aerr
	}
	if findRegion(srcRegion) == nil {
		return nil, newErr(http.StatusBadRequest, "SourceRegion.NotFound", "The specified source region %q does not exist.", truncate(srcRegion, 32))
	}
	srcID, aerr := require(p, "ImageId")
	if aerr != nil {
		return nil, aerr
	}
	dst, aerr := require(p, "DestinationRegionId")
	if aerr != nil {
		return nil, aerr
	}
	if findRegion(dst) == nil {
		return nil, newErr(http.StatusBadRequest, "DestinationRegion.NotFound", "The specified destination region %q does not exist.", truncate(dst, 32))
	}
	name := p.get("DestinationImageName")
	if name != "" {
		if aerr := checkImageName(name); aerr != nil {
			return nil, aerr
		}
	}
	desc := p.get("DestinationDescription")
	if desc != "" {
		if aerr := checkDescription(desc); aerr != nil {
			return nil, aerr
		}
	}
	encrypted, aerr := parseBool(p, "Encrypted")
	if aerr != nil {
		return nil, aerr
	}
	kms := p.get("KMSKeyId")
	if kms != "" && !encrypted {
		return nil, newErr(http.StatusBadRequest, "InvalidEncrypted.NotMatchKmsKeyId", "KMSKeyId is given but Encrypted is not true.")
	}
	if len(kms) > 128 {
		return nil, newErr(http.StatusNotFound, "InvalidParameter.KMSKeyId.NotFound", "The specified KMSKeyId does not exist.")
	}
	if p.get("EncryptAlgorithm") != "" {
		return nil, newErr(http.StatusBadRequest, "InvalidEncryptAlgorithm", "The EncryptAlgorithm parameter is unavailable.")
	}
	rg := p.get("ResourceGroupId")
	if rg != "" && !resourceGroupRe.MatchString(rg) {
		return nil, newErr(http.StatusNotFound, "InvalidResourceGroup.NotFound", "The specified resource group does not exist.")
	}
	tags, aerr := parseTags(p, "Tag")
	if aerr != nil {
		return nil, aerr
	}
	dryRun, aerr := parseBool(p, "DryRun")
	if aerr != nil {
		return nil, aerr
	}
	token := p.get("ClientToken")
	if len(token) > 64 || !printableASCII(token) {
		return nil, errInvalid("ClientToken", "it must be at most 64 printable ASCII characters")
	}
	// Images of the catalogue: shared-in images may be copied within their
	// region only; marketplace and public images not at all.
	cat := e.catalogImage(srcRegion, srcID)
	if cat != nil {
		switch cat.meta.alias() {
		case "others":
			if dst != srcRegion {
				return nil, newErr(http.StatusForbidden, "OperationDenied.SameRegionOnly", "Shared images can only be copied within the same region.")
			}
		case "marketplace":
			return nil, newErr(http.StatusForbidden, "OperationDenied.NotAuthorized", "Marketplace images cannot be copied.")
		default:
			return nil, newErr(http.StatusNotFound, "InvalidImageId.NotFound", "The specified image %s does not exist; public images are not copied, run instances from them.", srcID)
		}
	}
	if srcRegion == dst && !encrypted && cat == nil {
		return nil, newErr(http.StatusForbidden, "IncorrectDestinationRegion", "The destination region cannot be the source region.")
	}

	// The same token with the same parameters is the same copy, as long
	// as that copy exists; checked before the state checks because the
	// copy itself now holds the name and a quota slot.
	fp := fingerprint(p)
	if token != "" {
		if te, ok := e.tokens[token]; ok {
			if e.images[te.imageID] == nil {
				delete(e.tokens, token)
			} else if te.fingerprint != fp {
				return nil, newErr(http.StatusBadRequest, "IdempotentParameterMismatch", "The specified parameters are different from before for the same ClientToken.")
			} else if dryRun {
				return nil, errDryRun()
			} else {
				return copyImageBody{RequestId: c.rid, ImageId: te.imageID}, nil
			}
		}
	}

	src := e.imageIn(srcRegion, srcID)
	if src == nil {
		src = cat
	}
	if src == nil {
		return nil, errImageNotFound(srcID)
	}
	if src.meta.Public && src.meta.own() {
		return nil, newErr(http.StatusBadRequest, "OperationDenied.CommunityImage", "Community images cannot be copied.")
	}
	if src.status(c.now) != "Available" {
		return nil, newErr(http.StatusBadRequest, "IncorrectImageStatus", "The image not available.")
	}
	if limit := e.cfg.MaxImageSizeGiB; limit > 0 && src.SizeGiB > limit {
		return nil, newErr(http.StatusForbidden, "SizeExceed.Image", "The image exceeds the maximum size (%d GiB). You can use the CopySnapshot API to copy your snapshots and create an image from them.", limit)
	}
	if e.denied(srcRegion, dst) {
		return nil, newErr(http.StatusForbidden, "OperationDenied.NonCompliantDestinationRegion", "The copy operation to the destination region is not in compliance with regulations.")
	}
	if e.cfg.CopyConflict && e.copyingSource(src.ID, c.now) {
		return nil, newErr(http.StatusBadRequest, "OperationDenied.ImageCopyConflict", "The same image cannot be copied concurrently. Please wait until the last copy is completed.")
	}
	if name != "" && e.nameTaken(dst, name, nil) {
		return nil, newErr(http.StatusBadRequest, "InvalidImageName.Duplicated", "The specified image name is already in use in the target region.")
	}
	if q := e.cfg.ImageQuotaPerRegion; q > 0 && e.countIn(dst) >= q {
		return nil, newErr(http.StatusForbidden, "QuotaExceed.Image", "The number of images exceeds the limit (%d).", q)
	}
	if dryRun {
		return nil, errDryRun()
	}

	im := e.startCopy(src, dst, c.now)
	if name == "" {
		name = src.Name
		if e.nameTaken(dst, name, nil) {
			name = truncate(src.Name, 100) + "-copy-" + im.ID[2:]
		}
	}
	im.Name = name
	if desc == "" {
		desc = src.Description
	}
	im.Description = desc
	im.Encrypted, im.KMSKeyID, im.ResourceGroupID = encrypted || src.Encrypted, kms, rg
	for _, t := range tags {
		im.Tags[t.Key] = t.Value
	}
	e.addImage(im)
	if token != "" {
		e.tokens[token] = tokenEntry{fingerprint: fp, imageID: im.ID}
	}
	return copyImageBody{RequestId: c.rid, ImageId: im.ID}, nil
}

func errDryRun() *apiError {
	return newErr(http.StatusBadRequest, "DryRunOperation", "Request validation has been passed with DryRun flag set.")
}

// startCopy creates the copy image and queues its task. Its duration and
// whether it fails are fixed now, from the route's rate and the seeded RNG.
func (e *Emulator) startCopy(src *image, dst string, now time.Time) *image {
	rate := e.cfg.DefaultRateMiBps
	if r, ok := e.cfg.RouteRates[src.Region+">"+dst]; ok {
		rate = r
	}
	transfer := time.Duration(float64(src.SizeGiB*1024) / rate * float64(time.Second))
	scale := e.cfg.TimeScale
	startup := time.Duration(float64(e.cfg.StartupDelay) / scale)
	total := startup + time.Duration(float64(transfer)/scale)
	// Two draws for every copy, so that changing the rate does not shift
	// the sequence.
	fails, at := e.rngCopy.Float64() < e.cfg.CreateFailedRate, 0.1+0.8*e.rngCopy.Float64()
	task := &copyTask{
		sourceRegion: src.Region,
		sourceID:     src.ID,
		arrival:      now,
		startup:      startup,
		duration:     max(total, time.Millisecond),
	}
	if fails {
		task.failAt = at
	}
	im := &image{
		ID:           e.newID("m", dst),
		Region:       dst,
		SizeGiB:      src.SizeGiB,
		CreationTime: now.UTC().Truncate(time.Second),
		Tags:         map[string]string{},
		os:           src.os,
		copy:         task,
	}
	for _, d := range src.Disks {
		d.SnapshotID = e.newID("s", dst)
		im.Disks = append(im.Disks, d)
	}
	task.img = im
	q := e.queues[dst]
	if q == nil {
		q = newRegionQueue(e.slots)
		e.queues[dst] = q
	}
	q.add(task, now)
	e.counters.CopiesSubmitted[dst]++
	return im
}

// denied applies the compliance rule and the denied routes.
func (e *Emulator) denied(src, dst string) bool {
	if e.cfg.ComplianceRule == ComplianceMainlandOnly && !(mainland(src) && mainland(dst)) {
		return true
	}
	return slices.Contains(e.cfg.DeniedRoutes, src+">"+dst)
}

// copyingSource reports whether a copy of the source is in flight anywhere.
func (e *Emulator) copyingSource(srcID string, now time.Time) bool {
	for _, q := range e.queues {
		if q.copying(srcID, now) {
			return true
		}
	}
	return false
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// cancelCopyImage cancels a copy that is Waiting or Creating; the copy and
// its snapshots are gone afterwards and its slot frees.
func cancelCopyImage(e *Emulator, c *call) (any, *apiError) {
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
		return nil, newErr(http.StatusNotFound, "InvalidImageId.NotFound", "The specified ImageId does not exist.")
	}
	if im.copy == nil {
		return nil, newErr(http.StatusBadRequest, "ImageCreatedNotFromCopy", "The specified image is not the target image of a copy action.")
	}
	switch im.status(c.now) {
	case "Available":
		return nil, newErr(http.StatusBadRequest, "IncorrectImageStatus", "The image copy has completed.")
	case "CreateFailed":
		return nil, newErr(http.StatusBadRequest, "IncorrectImageStatus", "The Image copy has been failed.")
	}
	if e.rngCanc.Float64() < e.cfg.CancelNotSupportedRate {
		return nil, newErr(http.StatusBadRequest, "CancelNotSupported", "The specified image coping can not be cancelled.")
	}
	im.copy.cancelled, im.copy.cancelAt = true, c.now
	e.removeImage(im)
	e.queues[regionID].reschedule(c.now)
	e.counters.CopiesCancelled[regionID]++
	return requestIDBody{RequestId: c.rid}, nil
}

// deleteImage deletes an image and its snapshots; an unknown id is ignored
// as ECS documents, an in-flight copy is refused.
func deleteImage(e *Emulator, c *call) (any, *apiError) {
	regionID, aerr := requireRegion(c.p)
	if aerr != nil {
		return nil, aerr
	}
	id, aerr := require(c.p, "ImageId")
	if aerr != nil {
		return nil, aerr
	}
	if _, aerr := parseBool(c.p, "Force"); aerr != nil {
		return nil, aerr
	}
	if _, aerr := parseBool(c.p, "DryRun"); aerr != nil {
		return nil, aerr
	}
	im := e.imageIn(regionID, id)
	if im == nil {
		return requestIDBody{RequestId: c.rid}, nil
	}
	if im.inFlight(c.now) {
		return nil, newErr(http.StatusForbidden, "OperationDenied.ImageCopying", "The image is being copied. Please use the CancelCopyImage API.")
	}
	if len(im.shared) > 0 {
		return nil, newErr(http.StatusForbidden, "ImageUseShared", "The specified image has been shared to other accounts; unshare it first.")
	}
	if im.meta.Public {
		return nil, newErr(http.StatusForbidden, "ImageIsPublic", "The specified image is a community image; make it private (IsPublic=false) first.")
	}
	if dry, _ := parseBool(c.p, "DryRun"); dry {
		return nil, errDryRun()
	}
	e.removeImage(im)
	return requestIDBody{RequestId: c.rid}, nil
}
