package ecsemu_test

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

var systemName = regexp.MustCompile(`^[a-z0-9]+(_[a-zA-Z0-9-]+)*_(x64|arm64)_(dtc_(zh-cn|en-us)_)?[0-9]+G_([a-z]+_)?alibase_[0-9]{8}\.vhd$`)

func TestCatalogueOwnerAliasesAndDefaultListing(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	list := func(kv ...string) (int, []map[string]any) {
		t.Helper()
		m := c.ok("DescribeImages", append([]string{"RegionId", "cn-hangzhou", "PageSize", "100"}, kv...)...)
		return int(m["TotalCount"].(float64)), images(m)
	}
	sys, others, market := ecsemu.CatalogSize("cn-hangzhou")
	if sys < 20 || others != 2 || market != 2 {
		t.Fatalf("catalogue of cn-hangzhou: %d %d %d", sys, others, market)
	}
	const own = 10 // Available demo images in cn-hangzhou
	if n, _ := list(); n != own+sys+others {
		t.Fatalf("default listing: TotalCount %d, want %d (self, system and others; no marketplace)", n, own+sys+others)
	}
	n, imgs := list("ImageOwnerAlias", "system")
	if n != sys {
		t.Fatalf("system: %d, want %d", n, sys)
	}
	for _, im := range imgs {
		if im["ImageOwnerAlias"] != "system" || im["IsPublic"] != true || im["ImageId"] != im["ImageName"] || !systemName.MatchString(im["ImageId"].(string)) {
			t.Errorf("system image %v %v %v", im["ImageId"], im["ImageOwnerAlias"], im["IsPublic"])
		}
	}
	_, imgs = list("ImageOwnerAlias", "others")
	for _, im := range imgs {
		if im["ImageOwnerAlias"] != "others" || im["ImageOwnerId"].(float64) != 1098765432109876 {
			t.Errorf("shared image %v", im)
		}
	}
	_, imgs = list("ImageOwnerAlias", "marketplace")
	if len(imgs) != market {
		t.Fatalf("marketplace: %d", len(imgs))
	}
	for _, im := range imgs {
		if im["ProductCode"] == "" || im["SupplierName"] == "" || im["ImageOwnerAlias"] != "marketplace" {
			t.Errorf("marketplace image %v", im)
		}
	}
	if n, _ := list("ImageOwnerAlias", "self"); n != own {
		t.Fatalf("self: %d, want %d", n, own)
	}
	// Every region has the public images.
	for _, x := range c.ok("DescribeRegions")["Regions"].(map[string]any)["Region"].([]any) {
		region := x.(map[string]any)["RegionId"].(string)
		m := c.ok("DescribeImages", "RegionId", region, "ImageOwnerAlias", "system", "PageSize", "1")
		if int(m["TotalCount"].(float64)) != sys {
			t.Errorf("%s: %v system images", region, m["TotalCount"])
		}
	}
	// Paging walks the mixed listing exactly once.
	_, all := list()
	var walked []string
	for page := 1; page <= (len(all)+6)/7; page++ {
		m := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "PageSize", "7", "PageNumber", fmt.Sprint(page))
		walked = append(walked, names(images(m))...)
	}
	if fmt.Sprint(walked) != fmt.Sprint(names(all)) {
		t.Fatalf("pages differ from the full list:\n%v\n%v", walked, names(all))
	}
	// Fields ECS sends that tools read.
	for _, im := range all {
		if _, ok := im["SupplierName"].(string); !ok {
			t.Fatalf("no SupplierName: %v", im)
		}
		if f, ok := im["Features"].(map[string]any); !ok || f["NvmeSupport"] == "" {
			t.Fatalf("no Features.NvmeSupport: %v", im)
		}
		if d, ok := im["DetectionOptions"].(map[string]any); !ok || d["Status"] == "" {
			t.Fatalf("no DetectionOptions: %v", im)
		}
	}
}

func TestCatalogueFilters(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	count := func(kv ...string) int {
		t.Helper()
		m := c.ok("DescribeImages", append([]string{"RegionId", "cn-hangzhou", "PageSize", "100"}, kv...)...)
		return int(m["TotalCount"].(float64))
	}
	for _, tc := range []struct {
		name string
		kv   []string
		want int
	}{
		{"windows system images", []string{"ImageOwnerAlias", "system", "OSType", "windows"}, 4},
		{"arm64", []string{"ImageOwnerAlias", "system", "Architecture", "arm64"}, 2},
		{"no cloud-init", []string{"ImageOwnerAlias", "system", "IsSupportCloudinit", "false"}, 5},
		{"IO optimized", []string{"ImageOwnerAlias", "system", "IsSupportIoOptimized", "true"}, 22},
		{"in use by instances", []string{"Usage", "instance"}, 22},
		{"idle own images", []string{"ImageOwnerAlias", "self", "Usage", "none"}, 10},
		{"public", []string{"IsPublic", "true"}, 22},
		{"not public", []string{"IsPublic", "false"}, 12},
		{"owner id", []string{"ImageOwnerId", "1098765432109876"}, 2},
		{"created in [11-01, 11-05)", []string{"ImageOwnerAlias", "self", "Filter.1.Key", "CreationStartTime", "Filter.1.Value", "2026-11-01T00:00Z", "Filter.2.Key", "CreationEndTime", "Filter.2.Value", "2026-11-04T23:59Z"}, 3},
		{"end minute included", []string{"ImageOwnerAlias", "self", "Filter.1.Key", "CreationStartTime", "Filter.1.Value", "2026-11-01T00:00Z", "Filter.2.Key", "CreationEndTime", "Filter.2.Value", "2026-11-04T02:30Z"}, 3},
		{"end minute before", []string{"ImageOwnerAlias", "self", "Filter.1.Key", "CreationStartTime", "Filter.1.Value", "2026-11-01T00:00Z", "Filter.2.Key", "CreationEndTime", "Filter.2.Value", "2026-11-04T02:29Z"}, 2},
		{"network type", []string{"ImageOwnerAlias", "self", "Filter.1.Key", "NetworkType", "Filter.1.Value", "vpc"}, 10},
		{"deprecated hidden by default", []string{"ImageOwnerAlias", "self", "ImageName", "legacy-centos"}, 0},
		{"deprecated when asked", []string{"ImageOwnerAlias", "self", "Status", "Deprecated"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := count(tc.kv...); got != tc.want {
				t.Fatalf("%v: %d, want %d", tc.kv, got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		kv     []string
		status int
		code   string
	}{
		{[]string{"OSType", "macos"}, 404, "InvalidOSType"},
		{[]string{"Architecture", "sparc"}, 404, "InvalidArchitecture"},
		{[]string{"Usage", "sometimes"}, 404, "InvalidUsage"},
		{[]string{"Filter.1.Key", "Colour", "Filter.1.Value", "x"}, 404, "InvalidFilterKey.NotFound"},
		{[]string{"Filter.1.Key", "CreationStartTime", "Filter.1.Value", "yesterday"}, 404, "InvalidFilterValue"},
		{[]string{"Filter.2.Key", "CreationStartTime", "Filter.2.Value", "2026-11-01T00:00Z"}, 404, "InvalidFilterKey.NotFound"},
		{[]string{"Filter.1.Key", "NetworkType", "Filter.1.Value", "mesh"}, 400, "InvalidFilterValue.NetworkType"},
		{[]string{"IsPublic", "maybe"}, 400, "InvalidParameter"},
		{[]string{"ResourceGroupId", "group-1"}, 404, "InvalidResourceGroup.NotFound"},
		{[]string{"DryRun", "true"}, 400, "DryRunOperation"},
		{[]string{"DryRun", "true", "OSType", "macos"}, 404, "InvalidOSType"},
	} {
		c.fails(tc.status, tc.code, "DescribeImages", append([]string{"RegionId", "cn-hangzhou"}, tc.kv...)...)
	}
}

// A resource group filter shows the group's images and those of the
// default group (no group), as the DescribeImages reference says.
func TestDescribeImagesResourceGroupKeepsDefaultGroup(t *testing.T) {
	r := newRig(t, func(c *ecsemu.Config) { c.NoCatalog = true; c.StartupDelay = -1 })
	c := r.c
	id := c.copyImage("cn-hangzhou", demoAlinux, "cn-beijing", "ResourceGroupId", "rg-aek2abc123")
	other := c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing", "ResourceGroupId", "rg-aek2zzz999")
	r.clk.Step(copyDuration(40) * 2)
	got := names(images(c.ok("DescribeImages", "RegionId", "cn-beijing", "ResourceGroupId", "rg-aek2abc123", "PageSize", "100")))
	all := names(images(c.ok("DescribeImages", "RegionId", "cn-beijing", "PageSize", "100")))
	if len(got) != len(all)-1 {
		t.Fatalf("with the group: %v; without: %v; want all but the other group's copy", got, all)
	}
	for _, n := range got {
		if n == c.describe("cn-beijing", other)["ImageName"] {
			t.Fatalf("the other group's copy %s is listed", other)
		}
	}
	if c.describe("cn-beijing", id)["ResourceGroupId"] != "rg-aek2abc123" {
		t.Fatal("copy lost its resource group")
	}
}

func TestCatalogueImagesCannotBeChanged(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	const sys = "ubuntu_22_04_x64_20G_alibase_20240130.vhd"
	c.fails(404, "InvalidImageId.NotFound", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", sys, "DestinationRegionId", "cn-beijing")
	c.fails(403, "OperationDenied.NotAuthorized", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", "m-bp1mk7p2l4c6e8t0a2b4", "DestinationRegionId", "cn-beijing")
	c.fails(403, "OperationDenied.SameRegionOnly", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", "m-bp1s8h4r3d0i6m4g2e1s", "DestinationRegionId", "cn-beijing")
	// A shared-in image may be copied within its region: the copy is ours.
	id := c.copyImage("cn-hangzhou", "m-bp1s8h4r3d0i6m4g2e1s", "cn-hangzhou", "DestinationImageName", "my-copy-of-partner")
	if im := c.describe("cn-hangzhou", id); im == nil {
		t.Fatal("same-region copy of a shared image not found")
	}
	m := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "ImageId", id, "Status", "Waiting,Creating,Available", "ImageOwnerAlias", "self")
	if len(images(m)) != 1 || images(m)[0]["ImageOwnerAlias"] != "self" || images(m)[0]["IsCopied"] != true {
		t.Fatalf("copy of a shared image: %v", images(m))
	}
	for _, action := range [][]string{
		{"DeleteImage", "ImageId", sys},
		{"ModifyImageAttribute", "ImageId", sys, "Description", "mine now"},
		{"ModifyImageSharePermission", "ImageId", "m-bp1s8h4r3d0i6m4g2e1s", "AddAccount.1", "123"},
	} {
		if action[0] == "DeleteImage" {
			// DeleteImage ignores unknown ids, as documented; the public
			// image is still there afterwards.
			c.ok(action[0], append([]string{"RegionId", "cn-hangzhou"}, action[1:]...)...)
			if c.statusOf("cn-hangzhou", sys) != "Available" {
				t.Fatal("DeleteImage removed a public image")
			}
			continue
		}
		c.fails(404, "InvalidImageId.NotFound", action[0], append([]string{"RegionId", "cn-hangzhou"}, action[1:]...)...)
	}
	c.fails(404, "InvalidResourceId.NotFound", "TagResources", "RegionId", "cn-hangzhou", "ResourceType", "image", "ResourceId.1", sys, "Tag.1.Key", "a", "Tag.1.Value", "b")
}
