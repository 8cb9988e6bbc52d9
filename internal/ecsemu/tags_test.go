package ecsemu_test

import (
	"fmt"
	"testing"
)

func tagsOf(c *client, region, id string) map[string]string {
	out := map[string]string{}
	for _, x := range c.describe(region, id)["Tags"].(map[string]any)["Tag"].([]any) {
		m := x.(map[string]any)
		out[m["TagKey"].(string)] = m["TagValue"].(string)
	}
	return out
}

func TestTagResources(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	c.ok("TagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu, "ResourceId.2", demoAlinux,
		"Tag.1.Key", "replicated", "Tag.1.Value", "yes", "Tag.2.Key", "role", "Tag.2.Value", "base")
	if got := tagsOf(c, "cn-hangzhou", demoAlinux); got["replicated"] != "yes" || got["role"] != "base" || got["os"] != "alinux" {
		t.Fatalf("tags after TagResources: %v", got)
	}
	// ListTagResources by id, and by tag filter.
	m := c.ok("ListTagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu)
	items := m["TagResources"].(map[string]any)["TagResource"].([]any)
	if len(items) != 4 || items[0].(map[string]any)["ResourceType"] != "image" || items[0].(map[string]any)["ResourceId"] != demoUbuntu {
		t.Fatalf("ListTagResources by id: %v", items)
	}
	m = c.ok("ListTagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "Tag.1.Key", "replicated", "Tag.1.Value", "yes")
	seen := map[any]bool{}
	for _, x := range m["TagResources"].(map[string]any)["TagResource"].([]any) {
		seen[x.(map[string]any)["ResourceId"]] = true
	}
	if len(seen) != 2 || !seen[demoUbuntu] || !seen[demoAlinux] {
		t.Fatalf("ListTagResources by tag: %v", seen)
	}

	c.ok("UntagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu, "TagKey.1", "replicated")
	if got := tagsOf(c, "cn-hangzhou", demoUbuntu); got["replicated"] != "" || got["role"] != "base" {
		t.Fatalf("after untag: %v", got)
	}
	c.ok("UntagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu, "All", "true")
	if got := tagsOf(c, "cn-hangzhou", demoUbuntu); len(got) != 0 {
		t.Fatalf("after untag all: %v", got)
	}

	c.fails(404, "InvalidResourceId.NotFound", "TagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", "m-bp1000000000000000000", "Tag.1.Key", "k")
	c.fails(400, "InvalidResourceType.NotSupported", "TagResources", "RegionId", "cn-hangzhou", "ResourceType", "instance", "ResourceId.1", demoUbuntu, "Tag.1.Key", "k")
	c.fails(400, "MissingParameter", "TagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu)
	c.fails(400, "MissingParameter", "TagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "Tag.1.Key", "k")
	c.fails(400, "InvalidParameter", "TagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.51", demoUbuntu, "Tag.1.Key", "k")
	c.fails(400, "InvalidTagKey.Malformed", "TagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu, "Tag.1.Key", "acs:x")
	// At most 20 tags per image, all or nothing.
	var kv []string
	for i := 1; i <= 20; i++ {
		kv = append(kv, fmt.Sprintf("Tag.%d.Key", i), fmt.Sprintf("k%d", i))
	}
	c.ok("TagResources", append([]string{"RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu}, kv...)...)
	c.fails(400, "InvalidTagCount", "TagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu, "Tag.1.Key", "one-more")
}

func TestListTagResourcesPaging(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	var kv []string
	for i := 1; i <= 20; i++ {
		kv = append(kv, fmt.Sprintf("Tag.%d.Key", i), fmt.Sprintf("k%02d", i))
	}
	for _, id := range []string{demoUbuntu, demoAlinux, demoWindows} {
		c.ok("UntagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", id, "All", "true")
		c.ok("TagResources", append([]string{"RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", id}, kv...)...)
	}
	base := []string{"RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", demoUbuntu, "ResourceId.2", demoAlinux, "ResourceId.3", demoWindows}
	total, token, pages := 0, "", 0
	for {
		args := base
		if token != "" {
			args = append(append([]string{}, base...), "NextToken", token)
		}
		m := c.ok("ListTagResources", args...)
		total += len(m["TagResources"].(map[string]any)["TagResource"].([]any))
		pages++
		if token = m["NextToken"].(string); token == "" {
			break
		}
	}
	if total != 60 || pages != 2 {
		t.Fatalf("walked %d tags in %d pages, want 60 in 2", total, pages)
	}
	c.fails(400, "InvalidParameter", "ListTagResources", append(base, "NextToken", "garbage")...)
}

func TestModifyImageAttribute(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	id := c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing")
	r.clk.Step(copyDuration(40))
	c.ok("ModifyImageAttribute", "RegionId", "cn-beijing", "ImageId", id, "ImageFamily", "golden-ubuntu-22.04", "Description", "now in Beijing", "ImageName", "golden-bj")
	im := c.describe("cn-beijing", id)
	if im["ImageFamily"] != "golden-ubuntu-22.04" || im["Description"] != "now in Beijing" || im["ImageName"] != "golden-bj" {
		t.Fatalf("after ModifyImageAttribute: %v", im)
	}
	c.fails(400, "InvalidImageName.Malformed", "ModifyImageAttribute", "RegionId", "cn-beijing", "ImageId", id, "ImageName", "x")
	c.fails(400, "InvalidImageFamily.Malformed", "ModifyImageAttribute", "RegionId", "cn-beijing", "ImageId", id, "ImageFamily", "acs:family")
	c.fails(400, "InvalidDescription.Malformed", "ModifyImageAttribute", "RegionId", "cn-beijing", "ImageId", id, "Description", "http://x")
	c.fails(404, "InvalidImageId.NotFound", "ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", id)
	c.fails(400, "InvalidImageName.Duplicated", "ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "ImageName", "golden-ubuntu-22.04-20261101")
	// Renaming to its own name is fine.
	c.ok("ModifyImageAttribute", "RegionId", "cn-beijing", "ImageId", id, "ImageName", "golden-bj")
}

func TestSharePermission(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	shareArgs := func(prefix string, from, n int) []string {
		args := []string{"RegionId", "cn-hangzhou", "ImageId", demoUbuntu}
		for i := 1; i <= n; i++ {
			args = append(args, fmt.Sprintf("%s.%d", prefix, i), fmt.Sprint(1000000000+from+i))
		}
		return args
	}
	accounts := func() float64 {
		return c.ok("DescribeImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "PageSize", "100")["TotalCount"].(float64)
	}
	// Indices above 10 are ignored, as documented.
	c.ok("ModifyImageSharePermission", shareArgs("AddAccount", 0, 12)...)
	if n := accounts(); n != 10 {
		t.Fatalf("shared with %v accounts, want 10", n)
	}
	m := c.ok("DescribeImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "PageSize", "3")
	if acc := m["Accounts"].(map[string]any)["Account"].([]any); len(acc) != 3 || acc[0].(map[string]any)["AliyunId"] != "1000000001" {
		t.Fatalf("accounts page: %v", acc)
	}
	// A shared image cannot be deleted.
	c.fails(403, "ImageUseShared", "DeleteImage", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu)
	for from := 10; from < 50; from += 10 {
		c.ok("ModifyImageSharePermission", shareArgs("AddAccount", from, 10)...)
	}
	c.fails(403, "QuotaExceed.ShareImageUser", "ModifyImageSharePermission", shareArgs("AddAccount", 50, 1)...)
	c.ok("ModifyImageSharePermission", shareArgs("RemoveAccount", 0, 10)...)
	if n := accounts(); n != 40 {
		t.Fatalf("after removing 10: %v", n)
	}
	c.fails(400, "InvalidAccount.NotFound", "ModifyImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "AddAccount.1", "alice")
	c.fails(400, "IncorrectImageStatus", "ModifyImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoBuilding, "AddAccount.1", "1234")
	c.fails(404, "InvalidImageId.NotFound", "DescribeImageSharePermission", "RegionId", "cn-beijing", "ImageId", demoUbuntu)
}
