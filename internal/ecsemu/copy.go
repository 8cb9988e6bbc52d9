package ecsemu

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math/rand"
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

// copyRequest is a CopyImage request, its parameters checked.
type copyRequest struct {
	srcRegion, srcID, dst string
	name, desc, kms, rg   string
	encrypted, dryRun     bool
	tags                  []tagKV
	token                 string
}

// copyImage starts a copy of a custom image into another region. The
// checks run in the order ECS answers them: the parameters
// (parseCopyRequest), what the catalogue allows (catalogCopyDenied), a
// ClientToken seen before (replayCopy), the source and destination's state
// (copyRefused); then the copy is made (makeCopy).
func copyImage(e *Emulator, c *call) (any, *apiError) {
	r, aerr := parseCopyRequest(c.p)
	if aerr != nil {
		return nil, aerr
	}
	cat := e.catalogImage(r.srcRegion, r.srcID)
	if aerr := catalogCopyDenied(r, cat); aerr != nil {
		return nil, aerr
	}

	// The same token with the same parameters is the same copy, as long
	// as that copy exists; checked before the state checks because the
	// copy itself now holds the name and a quota slot.
	fp := fingerprint(c.p)
	if body, aerr, ok := e.replayCopy(c, r, fp); ok {
		return body, aerr
	}

	src := e.imageIn(r.srcRegion, r.srcID)
	if src == nil {
		src = cat
	}
	if src == nil {
		return nil, errImageNotFound(r.srcID)
	}
	if aerr := e.copyRefused(r, src, c.now); aerr != nil {
		return nil, aerr
	}
	if r.dryRun {
		return nil, errDryRun()
	}
	im := e.makeCopy(r, src, c.now)
	if r.token != "" {
		e.tokens[r.token] = tokenEntry{fingerprint: fp, imageID: im.ID}
	}
	return copyImageBody{RequestId: c.rid, ImageId: im.ID}, nil
}

// parseCopyRequest reads and checks the parameters of CopyImage.
func parseCopyRequest(p params) (*copyRequest, *apiError) {
	r := &copyRequest{}
	var aerr *apiError
	if r.srcRegion, aerr = require(p, "RegionId"); aerr != nil {
		return nil, aerr
	}
	if findRegion(r.srcRegion) == nil {
		return nil, newErr(http.StatusBadRequest, "SourceRegion.NotFound", "The specified source region %q does not exist.", truncate(r.srcRegion, 32))
	}
	if r.srcID, aerr = require(p, "ImageId"); aerr != nil {
		return nil, aerr
	}
	if r.dst, aerr = require(p, "DestinationRegionId"); aerr != nil {
		return nil, aerr
	}
	if findRegion(r.dst) == nil {
		return nil, newErr(http.StatusBadRequest, "DestinationRegion.NotFound", "The specified destination region %q does not exist.", truncate(r.dst, 32))
	}
	if r.name = p.get("DestinationImageName"); r.name != "" {
		if aerr := checkImageName(r.name); aerr != nil {
			return nil, aerr
		}
	}
	if r.desc = p.get("DestinationDescription"); r.desc != "" {
		if aerr := checkDescription(r.desc); aerr != nil {
			return nil, aerr
		}
	}
	if aerr := r.parseEncryption(p); aerr != nil {
		return nil, aerr
	}
	r.rg = p.get("ResourceGroupId")
	if r.rg != "" && !resourceGroupRe.MatchString(r.rg) {
		return nil, newErr(http.StatusNotFound, "InvalidResourceGroup.NotFound", "The specified resource group does not exist.")
	}
	if r.tags, aerr = parseTags(p, "Tag"); aerr != nil {
		return nil, aerr
	}
	if r.dryRun, aerr = parseBool(p, "DryRun"); aerr != nil {
		return nil, aerr
	}
	r.token = p.get("ClientToken")
	if len(r.token) > 64 || !printableASCII(r.token) {
		return nil, errInvalid("ClientToken", "it must be at most 64 printable ASCII characters")
	}
	return r, nil
}

// parseEncryption reads Encrypted, KMSKeyId and EncryptAlgorithm.
func (r *copyRequest) parseEncryption(p params) *apiError {
	var aerr *apiError
	if r.encrypted, aerr = parseBool(p, "Encrypted"); aerr != nil {
		return aerr
	}
	r.kms = p.get("KMSKeyId")
	if r.kms != "" && !r.encrypted {
		return newErr(http.StatusBadRequest, "InvalidEncrypted.NotMatchKmsKeyId", "KMSKeyId is given but Encrypted is not true.")
	}
	if len(r.kms) > 128 {
		return newErr(http.StatusNotFound, "InvalidParameter.KMSKeyId.NotFound", "The specified KMSKeyId does not exist.")
	}
	if p.get("EncryptAlgorithm") != "" {
		return newErr(http.StatusBadRequest, "InvalidEncryptAlgorithm", "The EncryptAlgorithm parameter is unavailable.")
	}
	return nil
}

// catalogCopyDenied applies the catalogue's rules (cat: the source in the
// catalogue, or nil): shared-in images may be copied within their region
// only; marketplace and public images not at all. A custom image is not
// copied into its own region unless the copy is encrypted.
func catalogCopyDenied(r *copyRequest, cat *image) *apiError {
	if cat != nil {
		switch cat.meta.alias() {
		case "others":
			if r.dst != r.srcRegion {
				return newErr(http.StatusForbidden, "OperationDenied.SameRegionOnly", "Shared images can only be copied within the same region.")
			}
		case "marketplace":
			return newErr(http.StatusForbidden, "OperationDenied.NotAuthorized", "Marketplace images cannot be copied.")
		default:
			return newErr(http.StatusNotFound, "InvalidImageId.NotFound", "The specified image %s does not exist; public images are not copied, run instances from them.", r.srcID)
		}
	}
	if r.srcRegion == r.dst && !r.encrypted && cat == nil {
		return newErr(http.StatusForbidden, "IncorrectDestinationRegion", "The destination region cannot be the source region.")
	}
	return nil
}

// replayCopy answers a ClientToken seen before whose copy still exists
// (ok: the answer is given); a token whose copy is gone is forgotten.
func (e *Emulator) replayCopy(c *call, r *copyRequest, fp string) (body any, aerr *apiError, ok bool) {
	if r.token == "" {
		return nil, nil, false
	}
	te, seen := e.tokens[r.token]
	switch {
	case !seen:
		return nil, nil, false
	case e.images[te.imageID] == nil:
		delete(e.tokens, r.token)
		return nil, nil, false
	case te.fingerprint != fp:
		return nil, newErr(http.StatusBadRequest, "IdempotentParameterMismatch", "The specified parameters are different from before for the same ClientToken."), true
	case r.dryRun:
		return nil, errDryRun(), true
	default:
		return copyImageBody{RequestId: c.rid, ImageId: te.imageID}, nil, true
	}
}

// copyRefused checks the source image and the destination region at now.
func (e *Emulator) copyRefused(r *copyRequest, src *image, now time.Time) *apiError {
	if src.meta.Public && src.meta.own() {
		return newErr(http.StatusBadRequest, "OperationDenied.CommunityImage", "Community images cannot be copied.")
	}
	if src.status(now) != "Available" {
		return newErr(http.StatusBadRequest, "IncorrectImageStatus", "The image not available.")
	}
	if limit := e.cfg.MaxImageSizeGiB; limit > 0 && src.SizeGiB > limit {
		return newErr(http.StatusForbidden, "SizeExceed.Image", "The image exceeds the maximum size (%d GiB). You can use the CopySnapshot API to copy your snapshots and create an image from them.", limit)
	}
	if e.denied(r.srcRegion, r.dst) {
		return newErr(http.StatusForbidden, "OperationDenied.NonCompliantDestinationRegion", "The copy operation to the destination region is not in compliance with regulations.")
	}
	if e.cfg.CopyConflict && e.copyingSource(src.ID, now) {
		return newErr(http.StatusBadRequest, "OperationDenied.ImageCopyConflict", "The same image cannot be copied concurrently. Please wait until the last copy is completed.")
	}
	if r.name != "" && e.nameTaken(r.dst, r.name, nil) {
		return newErr(http.StatusBadRequest, "InvalidImageName.Duplicated", "The specified image name is already in use in the target region.")
	}
	if q := e.cfg.ImageQuotaPerRegion; q > 0 && e.countIn(r.dst) >= q {
		return newErr(http.StatusForbidden, "QuotaExceed.Image", "The number of images exceeds the limit (%d).", q)
	}
	return nil
}

// makeCopy creates the copy of src the request asks for.
func (e *Emulator) makeCopy(r *copyRequest, src *image, now time.Time) *image {
	im := e.startCopy(src, r.dst, now)
	name := r.name
	if name == "" {
		name = src.Name
		if e.nameTaken(r.dst, name, nil) {
			name = truncate(src.Name, 100) + "-copy-" + im.ID[2:]
		}
	}
	im.Name = name
	desc := r.desc
	if desc == "" {
		desc = src.Description
	}
	im.Description = desc
	im.Encrypted, im.KMSKeyID, im.ResourceGroupID = r.encrypted || src.Encrypted, r.kms, r.rg
	for _, t := range r.tags {
		im.Tags[t.Key] = t.Value
	}
	e.addImage(im)
	return im
}

func errDryRun() *apiError {
	return newErr(http.StatusBadRequest, "DryRunOperation", "Request validation has been passed with DryRun flag set.")
}

// startCopy creates the copy image and queues its task. Its duration and
// whether it fails are fixed now, from the route's rate and its fate.
func (e *Emulator) startCopy(src *image, dst string, now time.Time) *image {
	rate := e.cfg.DefaultRateMiBps
	if r, ok := e.cfg.RouteRates[src.Region+">"+dst]; ok {
		rate = r
	}
	transfer := time.Duration(float64(src.SizeGiB*1024) / rate * float64(time.Second))
	scale := e.cfg.TimeScale
	startup := time.Duration(float64(e.cfg.StartupDelay) / scale)
	total := startup + time.Duration(float64(transfer)/scale)
	key := src.ID + ">" + dst
	fails, at := e.fate(key, e.copiesOf[key])
	e.copiesOf[key]++
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
	if fails {
		e.counters.FailAt[im.ID] = at
	}
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

// fate is whether the n-th copy of a source image into a region (n from 0:
// its attempt) ends CreateFailed, and after what share of its time. It is
// drawn from the seed and those three alone, not from a sequence shared by
// every copy, so that every client faces the same failures whatever order
// it sends its copies in (a benchmark compares clients on the same
// failures). The share is drawn whether or not the copy fails, so that
// changing the rate does not move it.
func (e *Emulator) fate(key string, n int) (fails bool, at float64) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%d", e.cfg.Seed, key, n)
	r := rand.New(rand.NewSource(int64(h.Sum64())))
	return r.Float64() < e.cfg.CreateFailedRate, 0.1 + 0.8*r.Float64()
}
