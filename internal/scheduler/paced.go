package scheduler

import (
	"context"

	"github.com/replicatord/replicatord/internal/cloud"
)

// Paced returns the provider with every call going through the scheduler's
// per-action token buckets, so that the reconciler and the API share the
// account's flow control with the copy workers; a throttled call slows its
// action for everyone (AIMD) and is tried again, paced, a few times before
// its error is returned.
func (s *Scheduler) Paced() cloud.Provider { return paced{s} }

type paced struct{ s *Scheduler }

// throttleTries bounds how often one call is retried after Throttling.
const throttleTries = 5

func (p paced) do(ctx context.Context, action string, fn func(context.Context) error) error {
	var err error
	for i := 0; i < throttleTries; i++ {
		err = p.s.call(ctx, action, fn)
		if cloud.ClassOf(err) != cloud.ClassThrottled || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (p paced) CopyImage(ctx context.Context, req cloud.CopyRequest) (id string, err error) {
	err = p.do(ctx, cloud.ActionCopyImage, func(ctx context.Context) error {
		id, err = p.s.cloud.CopyImage(ctx, req)
		return err
	})
	return id, err
}

func (p paced) DescribeImages(ctx context.Context, q cloud.ImageQuery) (imgs []cloud.Image, err error) {
	err = p.do(ctx, cloud.ActionDescribeImages, func(ctx context.Context) error {
		imgs, err = p.s.cloud.DescribeImages(ctx, q)
		return err
	})
	return imgs, err
}

func (p paced) CancelCopyImage(ctx context.Context, region, id string) error {
	return p.do(ctx, cloud.ActionCancelCopyImage, func(ctx context.Context) error { return p.s.cloud.CancelCopyImage(ctx, region, id) })
}

func (p paced) DeleteImage(ctx context.Context, region, id string) error {
	return p.do(ctx, cloud.ActionDeleteImage, func(ctx context.Context) error { return p.s.cloud.DeleteImage(ctx, region, id) })
}

func (p paced) DescribeRegions(ctx context.Context) (rs []cloud.Region, err error) {
	err = p.do(ctx, cloud.ActionDescribeRegions, func(ctx context.Context) error {
		rs, err = p.s.cloud.DescribeRegions(ctx)
		return err
	})
	return rs, err
}

func (p paced) TagImages(ctx context.Context, region string, ids []string, tags map[string]string) error {
	return p.do(ctx, cloud.ActionTagResources, func(ctx context.Context) error { return p.s.cloud.TagImages(ctx, region, ids, tags) })
}

func (p paced) SetImageFamily(ctx context.Context, region, id, family string) error {
	return p.do(ctx, cloud.ActionModifyImageAttribute, func(ctx context.Context) error { return p.s.cloud.SetImageFamily(ctx, region, id, family) })
}

func (p paced) ShareImage(ctx context.Context, region, id string, accounts []string) error {
	return p.do(ctx, cloud.ActionModifyImageSharePermission, func(ctx context.Context) error { return p.s.cloud.ShareImage(ctx, region, id, accounts) })
}

func (p paced) UnshareImage(ctx context.Context, region, id string, accounts []string) error {
	return p.do(ctx, cloud.ActionModifyImageSharePermission, func(ctx context.Context) error { return p.s.cloud.UnshareImage(ctx, region, id, accounts) })
}
