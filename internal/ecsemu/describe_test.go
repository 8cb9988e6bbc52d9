package ecsemu_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

func names(list []map[string]any) []string {
	out := make([]string, len(list))
	for i, im := range list {
		out[i] = im["ImageName"].(string)
	}
	return out
}

func TestDescribeImagesPagingAndOrder(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	all := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "PageSize", "100", "ImageOwnerAlias", "self")
	if all["TotalCount"].(float64) != 10 || all["RegionId"] != "cn-hangzhou" {
		t.Fatalf("Available images in cn-hangzhou: TotalCount %v", all["TotalCount"])
	}
	list := images(all)
	for i := 1; i < len(list); i++ {
		a, _ := time.Parse(time.RFC3339, list[i-1]["CreationTime"].(string))
		b, _ := time.Parse(time.RFC3339, list[i]["CreationTime"].(string))
		if a.Before(b) {
			t.Fatalf("not newest first: %v before %v", list[i-1]["CreationTime"], list[i]["CreationTime"])
		}
	}
	if list[0]["ImageName"] != "app-checkout-web-v2.8.0" {
		t.Fatalf("newest image is %v", list[0]["ImageName"])
	}

	// Default page size is 10; pages of 3 walk the same list.
	if m := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "ImageOwnerAlias", "self"); m["PageSize"].(float64) != 10 || m["PageNumber"].(float64) != 1 || len(images(m)) != 10 {
		t.Fatalf("defaults: %v %v %d", m["PageSize"], m["PageNumber"], len(images(m)))
	}
	var walked []string
	for page := 1; page <= 4; page++ {
		m := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "PageSize", "3", "PageNumber", fmt.Sprint(page), "ImageOwnerAlias", "self")
		if m["TotalCount"].(float64) != 10 {
			t.Fatalf("page %d TotalCount %v", page, m["TotalCount"])
		}
		walked = append(walked, names(images(m))...)
	}
	if fmt.Sprint(walked) != fmt.Sprint(names(list)) {
		t.Fatalf("pages:\n%v\nwant\n%v", walked, names(list))
	}
	if m := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "PageSize", "3", "PageNumber", "5", "ImageOwnerAlias", "self"); len(images(m)) != 0 {
		t.Fatal("page past the end is not empty")
	}
	for _, bad := range [][]string{{"PageSize", "0"}, {"PageSize", "101"}, {"PageSize", "ten"}, {"PageNumber", "0"}, {"PageNumber", "-1"}} {
		c.fails(400, "InvalidParameter", "DescribeImages", "RegionId", "cn-hangzhou", bad[0], bad[1])
	}
}

func TestDescribeImagesFilters(t *testing.T) {
	r := newRig(t, func(c *ecsemu.Config) { c.NoCatalog = true })
	c := r.c
	count := func(kv ...string) int {
		t.Helper()
		m := c.ok("DescribeImages", append([]string{"RegionId", "cn-hangzhou", "PageSize", "100"}, kv...)...)
		return len(images(m))
	}
	cases := []struct {
		name string
		kv   []string
		want int
	}{
		{"unknown id gives an empty list", []string{"ImageId", "m-bp1000000000000000000"}, 0},
		{"id list", []string{"ImageId", demoUbuntu + ", " + demoAlinux + ",m-bp1000000000000000000"}, 2},
		{"id of a Creating image, default Status", []string{"ImageId", demoBuilding}, 0},
		{"id of a Creating image, Status Creating", []string{"ImageId", demoBuilding, "Status", "Creating"}, 1},
		{"Status list", []string{"Status", "Creating,Deprecated"}, 2},
		{"every status", []string{"Status", "Waiting,Creating,Available,UnAvailable,CreateFailed,Deprecated"}, 12},
		{"ImageName substring", []string{"ImageName", "golden-ubuntu-22.04"}, 2},
		{"ImageName exact", []string{"ImageName", "golden-ubuntu-22.04-20261101"}, 1},
		{"ImageFamily", []string{"ImageFamily", "golden-ubuntu-22.04"}, 2},
		{"tag key and value", []string{"Tag.1.Key", "role", "Tag.1.Value", "golden"}, 6},
		{"two tags", []string{"Tag.1.Key", "role", "Tag.1.Value", "golden", "Tag.2.Key", "os", "Tag.2.Value", "ubuntu"}, 3},
		{"tag key only", []string{"Tag.1.Key", "app"}, 2},
		{"owner self", []string{"ImageOwnerAlias", "self"}, 10},
		{"owner system", []string{"ImageOwnerAlias", "system"}, 0},
		{"owner marketplace", []string{"ImageOwnerAlias", "marketplace"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := count(tc.kv...); got != tc.want {
				t.Fatalf("%v: %d images, want %d", tc.kv, got, tc.want)
			}
		})
	}
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("m-bp1%017d", i)
	}
	c.fails(400, "InvalidParameter", "DescribeImages", "RegionId", "cn-hangzhou", "ImageId", strings.Join(ids, ","))
	if got := count("ImageId", strings.Join(ids[:100], ",")); got != 0 {
		t.Fatalf("100 unknown ids: %d", got)
	}
	c.fails(400, "InvalidParameter", "DescribeImages", "RegionId", "cn-hangzhou", "Status", "Broken")
	c.fails(400, "InvalidImageOwnerAlias.ValueNotSupported", "DescribeImages", "RegionId", "cn-hangzhou", "ImageOwnerAlias", "everyone")
	c.fails(400, "MissingParameter", "DescribeImages")
	c.fails(404, "InvalidRegionId.NotFound", "DescribeImages", "RegionId", "cn-atlantis")
	c.fails(400, "InvalidTagCount", "DescribeImages", "RegionId", "cn-hangzhou", "Tag.21.Key", "x")
}

func TestDescribeImagesShape(t *testing.T) {
	r := newRig(t, nil)
	im := r.c.describe("cn-hangzhou", demoUbuntu)
	for _, k := range []string{"ImageId", "ImageName", "Status", "Progress", "CreationTime", "Description", "ImageOwnerAlias", "OSType", "Architecture", "ImageFamily"} {
		if _, ok := im[k].(string); !ok {
			t.Errorf("%s is not a string: %v", k, im[k])
		}
	}
	for _, k := range []string{"IsCopied", "IsSupportIoOptimized", "IsPublic"} {
		if _, ok := im[k].(bool); !ok {
			t.Errorf("%s is not a bool: %v", k, im[k])
		}
	}
	if im["Size"].(float64) != 40 || im["IsCopied"] != false || im["Progress"] != "100%" || im["ImageOwnerAlias"] != "self" {
		t.Errorf("source image: %v", im)
	}
	tag := im["Tags"].(map[string]any)["Tag"].([]any)[0].(map[string]any)
	if _, ok := tag["TagKey"].(string); !ok {
		t.Errorf("tag shape %v", tag)
	}
	d := im["DiskDeviceMappings"].(map[string]any)["DiskDeviceMapping"].([]any)[0].(map[string]any)
	for _, k := range []string{"SnapshotId", "Size", "Device", "Type", "Progress"} {
		if _, ok := d[k].(string); !ok {
			t.Errorf("DiskDeviceMapping.%s is not a string: %v", k, d[k])
		}
	}
	if _, ok := d["RemainTime"].(float64); !ok {
		t.Errorf("RemainTime is not a number: %v", d["RemainTime"])
	}
}

func TestDescribeRegions(t *testing.T) {
	r := newRig(t, nil)
	regions := r.c.ok("DescribeRegions")["Regions"].(map[string]any)["Region"].([]any)
	byID := map[string]map[string]any{}
	for _, x := range regions {
		m := x.(map[string]any)
		byID[m["RegionId"].(string)] = m
		if m["Status"] != "available" || !strings.HasPrefix(m["RegionEndpoint"].(string), "ecs") {
			t.Errorf("region %v", m)
		}
	}
	for _, id := range []string{"cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen", "cn-qingdao", "cn-zhangjiakou", "cn-huhehaote", "cn-chengdu", "cn-hongkong", "ap-southeast-1", "ap-southeast-3", "ap-southeast-5", "ap-northeast-1", "ap-south-1", "us-west-1", "us-east-1", "eu-central-1", "eu-west-1", "me-east-1"} {
		if byID[id] == nil {
			t.Errorf("region %s missing", id)
		}
	}
	if byID["cn-hangzhou"]["LocalName"] != "华东1（杭州）" {
		t.Errorf("default LocalName %v", byID["cn-hangzhou"]["LocalName"])
	}
	en := r.c.ok("DescribeRegions", "AcceptLanguage", "en-US")["Regions"].(map[string]any)["Region"].([]any)
	for _, x := range en {
		if m := x.(map[string]any); m["RegionId"] == "cn-hangzhou" && m["LocalName"] != "China (Hangzhou)" {
			t.Errorf("en-US LocalName %v", m["LocalName"])
		}
	}
}
