package aliyun

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
)

// maxPages stops DescribeImages from paging forever through an answer whose
// TotalCount keeps growing: 1000 pages of 100 is far beyond any region.
const maxPages = 1000

// CopyImage starts a copy of req.SourceImageID from req.SourceRegion to
// req.DestinationRegion and returns the id of the new image in the
// destination. With DryRun it returns "", nil when ECS says the copy would
// be accepted.
//
// ClientToken and DryRun are newer than this SDK's CopyImageRequest, so they
// travel as extra query parameters (signed like the rest).
func (p *Provider) CopyImage(ctx context.Context, r cloud.CopyRequest) (string, error) {
	if err := checkRegion("SourceRegion", r.SourceRegion); err != nil {
		return "", err
	}
	if err := checkRegion("DestinationRegion", r.DestinationRegion); err != nil {
		return "", err
	}
	if err := checkImageID("SourceImageID", r.SourceImageID); err != nil {
		return "", err
	}
	if len(r.Tags) > maxTagsPerCall {
		return "", errdefs.Invalid("Tags", "%d tags; CopyImage takes at most %d", len(r.Tags), maxTagsPerCall)
	}
	if err := checkTags("Tags", r.Tags); err != nil {
		return "", err
	}
	if err := checkClientToken(r.ClientToken); err != nil {
		return "", err
	}

	req := ecs.CreateCopyImageRequest()
	req.RegionId = r.SourceRegion
	req.ImageId = r.SourceImageID
	req.DestinationRegionId = r.DestinationRegion
	req.DestinationImageName = r.Name
	req.DestinationDescription = r.Description
	if r.Encrypted {
		req.Encrypted = requests.NewBoolean(true)
	}
	req.KMSKeyId = r.KMSKeyID
	req.ResourceGroupId = r.ResourceGroupID
	if len(r.Tags) > 0 {
		tags := make([]ecs.CopyImageTag, 0, len(r.Tags))
		for _, k := range sortedKeys(r.Tags) {
			tags = append(tags, ecs.CopyImageTag{Key: k, Value: r.Tags[k]})
		}
		req.Tag = &tags
	}
	if r.ClientToken != "" {
		req.QueryParams["ClientToken"] = r.ClientToken
	}
	if r.DryRun {
		req.QueryParams["DryRun"] = "true"
	}

	var imageID string
	err := p.do(ctx, cloud.ActionCopyImage, r.SourceRegion, req, func(c *ecs.Client) (string, error) {
		resp, err := c.CopyImage(req)
		if err != nil {
			return "", err
		}
		if resp.ImageId == "" && !r.DryRun {
			return resp.RequestId, &invalidResponse{msg: "CopyImage succeeded without an ImageId", requestID: resp.RequestId}
		}
		imageID = resp.ImageId
		return resp.RequestId, nil
	})
	if err != nil {
		if r.DryRun && cloud.CodeOf(err) == CodeDryRunOperation {
			return "", nil
		}
		return "", err
	}
	// imageID is read only after do returned nil: the call's goroutine has
	// finished writing it.
	return imageID, nil
}

// DescribeImages lists the images of q.Region that match q, fetching every
// page (100 per call) until ECS's TotalCount is reached.
func (p *Provider) DescribeImages(ctx context.Context, q cloud.ImageQuery) ([]cloud.Image, error) {
	if err := checkRegion("Region", q.Region); err != nil {
		return nil, err
	}
	if len(q.IDs) > cloud.MaxIDsPerDescribe {
		return nil, errdefs.Invalid("IDs", "%d ids; DescribeImages takes at most %d", len(q.IDs), cloud.MaxIDsPerDescribe)
	}
	for _, id := range q.IDs {
		if err := checkImageID("IDs", id); err != nil {
			return nil, err
		}
	}
	for _, s := range q.Statuses {
		if s == "" || strings.ContainsAny(s, ", ") {
			return nil, errdefs.Invalid("Statuses", "%q is not an image status", s)
		}
	}
	if len(q.Tags) > maxTagsPerCall {
		return nil, errdefs.Invalid("Tags", "%d tags; DescribeImages takes at most %d", len(q.Tags), maxTagsPerCall)
	}
	if err := checkTags("Tags", q.Tags); err != nil {
		return nil, err
	}

	var (
		out     []cloud.Image
		seen    = map[string]bool{}
		fetched int
	)
	for page := 1; ; page++ {
		if page > maxPages {
			return nil, &cloud.Error{Action: cloud.ActionDescribeImages, Region: q.Region, Code: CodeInvalidResponse,
				Message: "more than " + strconv.Itoa(maxPages) + " pages of images", Class: Classify(CodeInvalidResponse, 200)}
		}
		req := describeImagesRequest(q, page)
		var resp *ecs.DescribeImagesResponse
		err := p.do(ctx, cloud.ActionDescribeImages, q.Region, req, func(c *ecs.Client) (string, error) {
			r, err := c.DescribeImages(req)
			if err != nil {
				return "", err
			}
			resp = r
			return r.RequestId, nil
		})
		if err != nil {
			return nil, err
		}
		images := resp.Images.Image
		fetched += len(images)
		for _, im := range images {
			// Pages can shift while we read them (an image created or
			// deleted between two calls); never report one twice.
			if im.ImageId == "" || seen[im.ImageId] {
				continue
			}
			seen[im.ImageId] = true
			out = append(out, toImage(q.Region, im))
		}
		if len(images) == 0 || fetched >= resp.TotalCount {
			return out, nil
		}
	}
}

func describeImagesRequest(q cloud.ImageQuery, page int) *ecs.DescribeImagesRequest {
	req := ecs.CreateDescribeImagesRequest()
	req.RegionId = q.Region
	req.ImageId = strings.Join(q.IDs, ",")
	req.Status = strings.Join(q.Statuses, ",")
	req.ImageName = q.Name
	req.ImageOwnerAlias = q.OwnerAlias
	if len(q.Tags) > 0 {
		tags := make([]ecs.DescribeImagesTag, 0, len(q.Tags))
		for _, k := range sortedKeys(q.Tags) {
			tags = append(tags, ecs.DescribeImagesTag{Key: k, Value: q.Tags[k]})
		}
		req.Tag = &tags
	}
	req.PageSize = requests.NewInteger(pageSize)
	req.PageNumber = requests.NewInteger(page)
	return req
}

// toImage converts the SDK's view of an image. The SDK's fuzzy JSON decoding
// already accepted numbers as strings and the reverse; what is left is ECS's
// own formats: Progress "45%", CreationTime RFC 3339, per-disk RemainTime.
// A malformed cosmetic field (progress, time) becomes its zero value rather
// than failing the whole listing: tracking copies matters more than them.
func toImage(region string, im ecs.Image) cloud.Image {
	out := cloud.Image{
		ID:              im.ImageId,
		Region:          region,
		Name:            im.ImageName,
		Description:     im.Description,
		Status:          im.Status,
		ProgressPercent: parseProgress(im.Progress),
		SizeGiB:         int64(im.Size),
		IsCopied:        im.IsCopied,
		CreationTime:    parseTime(im.CreationTime),
		Family:          im.ImageFamily,
	}
	var remain int
	for _, d := range im.DiskDeviceMappings.DiskDeviceMapping {
		if d.SnapshotId != "" {
			out.SnapshotIDs = append(out.SnapshotIDs, d.SnapshotId)
		}
		remain = max(remain, d.RemainTime)
	}
	out.RemainTime = time.Duration(remain) * time.Second
	if n := len(im.Tags.Tag); n > 0 {
		out.Tags = make(map[string]string, n)
		for _, t := range im.Tags.Tag {
			k, v := t.TagKey, t.TagValue
			if k == "" { // some APIs spell them Key/Value
				k, v = t.Key, t.Value
			}
			if k != "" {
				out.Tags[k] = v
			}
		}
	}
	return out
}

// parseProgress reads "45%" (or "45") as 45, clamped to 0..100.
func parseProgress(s string) int32 {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return int32(min(max(f, 0), 100))
}

// parseTime reads ECS times: RFC 3339 ("2019-11-15T06:07:05Z"), or without
// seconds ("2019-11-15T06:07Z") as the filters write them.
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
