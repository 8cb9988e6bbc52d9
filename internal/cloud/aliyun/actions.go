package aliyun

import (
	"context"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
)

// CancelCopyImage cancels an unfinished copy. region is the copy's
// (destination) region and imageID the copy's id, as ECS wants them.
func (p *Provider) CancelCopyImage(ctx context.Context, region, imageID string) error {
	if err := checkRegion("region", region); err != nil {
		return err
	}
	if err := checkImageID("imageID", imageID); err != nil {
		return err
	}
	req := ecs.CreateCancelCopyImageRequest()
	req.RegionId = region
	req.ImageId = imageID
	return p.do(ctx, cloud.ActionCancelCopyImage, region, req, func(c *ecs.Client) (string, error) {
		resp, err := c.CancelCopyImage(req)
		if err != nil {
			return "", err
		}
		return resp.RequestId, nil
	})
}

// DeleteImage deletes a custom image (without Force: an image in use by
// instances is refused with ImageUsingByInstance).
func (p *Provider) DeleteImage(ctx context.Context, region, imageID string) error {
	if err := checkRegion("region", region); err != nil {
		return err
	}
	if err := checkImageID("imageID", imageID); err != nil {
		return err
	}
	req := ecs.CreateDeleteImageRequest()
	req.RegionId = region
	req.ImageId = imageID
	return p.do(ctx, cloud.ActionDeleteImage, region, req, func(c *ecs.Client) (string, error) {
		resp, err := c.DeleteImage(req)
		if err != nil {
			return "", err
		}
		return resp.RequestId, nil
	})
}

// DescribeRegions lists the regions the account can use, with English names.
func (p *Provider) DescribeRegions(ctx context.Context) ([]cloud.Region, error) {
	req := ecs.CreateDescribeRegionsRequest()
	req.RegionId = p.set.region
	req.AcceptLanguage = "en-US"
	var regions []cloud.Region
	err := p.do(ctx, cloud.ActionDescribeRegions, p.set.region, req, func(c *ecs.Client) (string, error) {
		resp, err := c.DescribeRegions(req)
		if err != nil {
			return "", err
		}
		for _, r := range resp.Regions.Region {
			regions = append(regions, cloud.Region{ID: r.RegionId, LocalName: r.LocalName, Status: r.Status})
		}
		return resp.RequestId, nil
	})
	if err != nil {
		return nil, err
	}
	return regions, nil
}

// TagImages adds tags to images with TagResources, split into as many calls
// as ECS's limits need (50 ids and 20 tags per call). It stops at the first
// failing call; tagging is idempotent, so the caller can simply retry.
func (p *Provider) TagImages(ctx context.Context, region string, imageIDs []string, tags map[string]string) error {
	if err := checkRegion("region", region); err != nil {
		return err
	}
	for _, id := range imageIDs {
		if err := checkImageID("imageIDs", id); err != nil {
			return err
		}
	}
	if err := checkTags("tags", tags); err != nil {
		return err
	}
	if len(imageIDs) == 0 || len(tags) == 0 {
		return nil
	}
	keys := sortedKeys(tags)
	for _, ids := range chunks(imageIDs, maxResourcesPerTag) {
		for _, ks := range chunks(keys, maxTagsPerCall) {
			req := ecs.CreateTagResourcesRequest()
			req.RegionId = region
			req.ResourceType = "image"
			rids := append([]string(nil), ids...)
			req.ResourceId = &rids
			ts := make([]ecs.TagResourcesTag, 0, len(ks))
			for _, k := range ks {
				ts = append(ts, ecs.TagResourcesTag{Key: k, Value: tags[k]})
			}
			req.Tag = &ts
			err := p.do(ctx, cloud.ActionTagResources, region, req, func(c *ecs.Client) (string, error) {
				resp, err := c.TagResources(req)
				if err != nil {
					return "", err
				}
				return resp.RequestId, nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// SetImageFamily puts an image into a family (ModifyImageAttribute). Copies
// do not inherit the family of their source, so the engine sets it once a
// copy is Available.
func (p *Provider) SetImageFamily(ctx context.Context, region, imageID, family string) error {
	if err := checkRegion("region", region); err != nil {
		return err
	}
	if err := checkImageID("imageID", imageID); err != nil {
		return err
	}
	if family == "" {
		return errdefs.Invalid("family", "family is empty")
	}
	req := ecs.CreateModifyImageAttributeRequest()
	req.RegionId = region
	req.ImageId = imageID
	req.ImageFamily = family
	return p.do(ctx, cloud.ActionModifyImageAttribute, region, req, func(c *ecs.Client) (string, error) {
		resp, err := c.ModifyImageAttribute(req)
		if err != nil {
			return "", err
		}
		return resp.RequestId, nil
	})
}

// ShareImage shares an image with other accounts
// (ModifyImageSharePermission AddAccount.N), 10 accounts per call as ECS
// requires. Sharing is idempotent, so a failed split call can be retried
// whole.
func (p *Provider) ShareImage(ctx context.Context, region, imageID string, accounts []string) error {
	return p.modifySharing(ctx, region, imageID, accounts, true)
}

// UnshareImage stops sharing an image with accounts
// (ModifyImageSharePermission RemoveAccount.N, at most 10 per call).
func (p *Provider) UnshareImage(ctx context.Context, region, imageID string, accounts []string) error {
	return p.modifySharing(ctx, region, imageID, accounts, false)
}

func (p *Provider) modifySharing(ctx context.Context, region, imageID string, accounts []string, add bool) error {
	if err := checkRegion("region", region); err != nil {
		return err
	}
	if err := checkImageID("imageID", imageID); err != nil {
		return err
	}
	for _, a := range accounts {
		if !accountPattern.MatchString(a) {
			return errdefs.Invalid("accounts", "%q is not an account id", a)
		}
	}
	for _, part := range chunks(accounts, maxAccountsPerShare) {
		req := ecs.CreateModifyImageSharePermissionRequest()
		req.RegionId = region
		req.ImageId = imageID
		list := append([]string(nil), part...)
		if add {
			req.AddAccount = &list
		} else {
			req.RemoveAccount = &list
		}
		err := p.do(ctx, cloud.ActionModifyImageSharePermission, region, req, func(c *ecs.Client) (string, error) {
			resp, err := c.ModifyImageSharePermission(req)
			if err != nil {
				return "", err
			}
			return resp.RequestId, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
