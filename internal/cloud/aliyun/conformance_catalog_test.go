package aliyun

// Conformance of the catalogue, the DescribeImages filters, the image
// lifecycle and the protocol details, with the SDK's own ECS client (not
// the adapter, which does not expose every filter) against ecsemu over
// HTTP. Each test names the fidelity-table rows of cmd/ecsemu/README.md it
// covers.

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/ecsemu"
)

func ecsClient(t *testing.T, e *emuEnv) *ecs.Client {
	t.Helper()
	c, err := ecs.NewClientWithAccessKey("cn-hangzhou", testKeyID, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = strings.TrimPrefix(e.srv.URL, "http://")
	t.Cleanup(c.Shutdown)
	return c
}

func describe(t *testing.T, c *ecs.Client, region string, mod func(*ecs.DescribeImagesRequest)) (*ecs.DescribeImagesResponse, error) {
	t.Helper()
	req := ecs.CreateDescribeImagesRequest()
	req.RegionId = region
	req.PageSize = requests.NewInteger(100)
	if mod != nil {
		mod(req)
	}
	return c.DescribeImages(req)
}

func wantServerError(t *testing.T, what string, err error, status int, code string) *sdkerrors.ServerError {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) || se.HttpStatus() != status || se.ErrorCode() != code {
		t.Errorf("%s: %v, want %d %s", what, err, status, code)
		return nil
	}
	return se
}

// Rows: owner aliases and the default listing, TotalCount and paging, public
// image naming, shared and marketplace images, response fields.
func TestConformanceCatalogue(t *testing.T) {
	e := newEmu(t, ecsemu.Config{})
	c := ecsClient(t, e)
	sys, others, market := ecsemu.CatalogSize("cn-hangzhou")
	const own = 3 // Available conformance fixtures in cn-hangzhou
	for alias, want := range map[string]int{"": own + sys + others, "self": own, "system": sys, "others": others, "marketplace": market} {
		resp, err := describe(t, c, "cn-hangzhou", func(r *ecs.DescribeImagesRequest) { r.ImageOwnerAlias = alias })
		if err != nil || resp.TotalCount != want || len(resp.Images.Image) != want {
			t.Errorf("ImageOwnerAlias %q: %v, TotalCount %d, %d images; want %d", alias, err, resp.TotalCount, len(resp.Images.Image), want)
			continue
		}
		for _, im := range resp.Images.Image {
			switch {
			case alias != "" && im.ImageOwnerAlias != alias, alias == "" && im.ImageOwnerAlias == "marketplace":
				t.Errorf("alias %q listed %s of %s", alias, im.ImageId, im.ImageOwnerAlias)
			case im.ImageOwnerAlias == "system" && (im.ImageId != im.ImageName || !strings.HasSuffix(im.ImageId, ".vhd") || !strings.Contains(im.ImageId, "_alibase_") || !im.IsPublic):
				t.Errorf("public image %+v", im.ImageId)
			case im.ImageOwnerAlias == "marketplace" && (im.ProductCode == "" || im.SupplierName == ""):
				t.Errorf("marketplace image without product or supplier: %s", im.ImageId)
			case im.ImageOwnerAlias == "others" && im.ImageOwnerId == 1234567890123456:
				t.Errorf("shared image owned by us: %s", im.ImageId)
			case im.Features.NvmeSupport == "" || im.DetectionOptions.Status == "" || im.BootMode == "":
				t.Errorf("%s lacks Features, DetectionOptions or BootMode", im.ImageId)
			}
		}
	}
	// Paging: pages of 4 walk the default listing once, TotalCount on each.
	full, _ := describe(t, c, "cn-hangzhou", nil)
	var walked []string
	for page := 1; len(walked) < full.TotalCount; page++ {
		resp, err := describe(t, c, "cn-hangzhou", func(r *ecs.DescribeImagesRequest) {
			r.PageSize, r.PageNumber = requests.NewInteger(4), requests.NewInteger(page)
		})
		if err != nil || resp.TotalCount != full.TotalCount || page > 100 {
			t.Fatalf("page %d: %v %d", page, err, resp.TotalCount)
		}
		for _, im := range resp.Images.Image {
			walked = append(walked, im.ImageId)
		}
	}
	for i, im := range full.Images.Image {
		if walked[i] != im.ImageId {
			t.Fatalf("paging differs at %d: %s vs %s", i, walked[i], im.ImageId)
		}
	}
	// The adapter pages through the whole default listing too.
	ims, err := e.p.DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-hangzhou"})
	if err != nil || len(ims) != full.TotalCount {
		t.Fatalf("adapter listing: %d, %v; want %d", len(ims), err, full.TotalCount)
	}
}

// Rows: every DescribeImages filter, invalid values, DryRun, ResourceGroupId.
func TestConformanceDescribeImagesFilters(t *testing.T) {
	e := newEmu(t, ecsemu.Config{})
	c := ecsClient(t, e)
	count := func(mod func(*ecs.DescribeImagesRequest)) int {
		t.Helper()
		resp, err := describe(t, c, "cn-hangzhou", mod)
		if err != nil {
			t.Fatalf("DescribeImages: %v", err)
		}
		return resp.TotalCount
	}
	sysOnly := func(r *ecs.DescribeImagesRequest) { r.ImageOwnerAlias = "system" }
	for name, tc := range map[string]struct {
		mod  func(*ecs.DescribeImagesRequest)
		want int
	}{
		"OSType windows":       {func(r *ecs.DescribeImagesRequest) { sysOnly(r); r.OSType = "windows" }, 4},
		"Architecture arm64":   {func(r *ecs.DescribeImagesRequest) { sysOnly(r); r.Architecture = "arm64" }, 2},
		"Usage instance":       {func(r *ecs.DescribeImagesRequest) { r.Usage = "instance" }, 22},
		"IsSupportCloudinit":   {func(r *ecs.DescribeImagesRequest) { sysOnly(r); r.IsSupportCloudinit = requests.NewBoolean(false) }, 5},
		"IsSupportIoOptimized": {func(r *ecs.DescribeImagesRequest) { sysOnly(r); r.IsSupportIoOptimized = requests.NewBoolean(true) }, 22},
		"IsPublic":             {func(r *ecs.DescribeImagesRequest) { r.IsPublic = requests.NewBoolean(true) }, 22},
		"ImageOwnerId":         {func(r *ecs.DescribeImagesRequest) { r.ImageOwnerId = requests.NewInteger64(1098765432109876) }, 2},
		"ImageFamily":          {func(r *ecs.DescribeImagesRequest) { r.ImageFamily = "acs:ubuntu_22_04_x64" }, 1},
		"Status Creating":      {func(r *ecs.DescribeImagesRequest) { r.ImageOwnerAlias = "self"; r.Status = "Creating" }, 1},
		"creation window, system": {func(r *ecs.DescribeImagesRequest) {
			sysOnly(r)
			r.Filter = &[]ecs.DescribeImagesFilter{{Key: "CreationStartTime", Value: "2024-06-01T00:00Z"}, {Key: "CreationEndTime", Value: "2024-06-30T23:59Z"}}
		}, 7},
	} {
		if got := count(tc.mod); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
	for name, tc := range map[string]struct {
		mod    func(*ecs.DescribeImagesRequest)
		status int
		code   string
	}{
		"OSType":       {func(r *ecs.DescribeImagesRequest) { r.OSType = "beos" }, 404, "InvalidOSType"},
		"Architecture": {func(r *ecs.DescribeImagesRequest) { r.Architecture = "mips" }, 404, "InvalidArchitecture"},
		"Usage":        {func(r *ecs.DescribeImagesRequest) { r.Usage = "often" }, 404, "InvalidUsage"},
		"filter key":   {func(r *ecs.DescribeImagesRequest) { r.Filter = &[]ecs.DescribeImagesFilter{{Key: "Size", Value: "1"}} }, 404, "InvalidFilterKey.NotFound"},
		"filter value": {func(r *ecs.DescribeImagesRequest) {
			r.Filter = &[]ecs.DescribeImagesFilter{{Key: "CreationEndTime", Value: "soon"}}
		}, 404, "InvalidFilterValue"},
		"owner alias":    {func(r *ecs.DescribeImagesRequest) { r.ImageOwnerAlias = "friends" }, 400, "InvalidImageOwnerAlias.ValueNotSupported"},
		"resource group": {func(r *ecs.DescribeImagesRequest) { r.ResourceGroupId = "default" }, 404, "InvalidResourceGroup.NotFound"},
		"DryRun":         {func(r *ecs.DescribeImagesRequest) { r.DryRun = requests.NewBoolean(true) }, 400, "DryRunOperation"},
	} {
		_, err := describe(t, c, "cn-hangzhou", tc.mod)
		wantServerError(t, name, err, tc.status, tc.code)
	}
	// ResourceGroupId keeps the default group's images.
	id, err := e.p.CopyImage(context.Background(), cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcB, DestinationRegion: "cn-beijing", ResourceGroupID: "rg-aek2other999"})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Step(3 * time.Hour)
	all, _ := describe(t, c, "cn-beijing", func(r *ecs.DescribeImagesRequest) { r.ImageOwnerAlias = "self" })
	inRG, _ := describe(t, c, "cn-beijing", func(r *ecs.DescribeImagesRequest) { r.ImageOwnerAlias = "self"; r.ResourceGroupId = "rg-aek2mine0001" })
	if all.TotalCount != 2 || inRG.TotalCount != 1 || inRG.Images.Image[0].ImageId == id {
		t.Errorf("ResourceGroupId: %d of %d listed; want the default group's image only", inRG.TotalCount, all.TotalCount)
	}
}

// Rows: Deprecated status, BootMode, community images, catalogue images
// not copyable or changeable.
func TestConformanceImageLifecycle(t *testing.T) {
	e := newEmu(t, ecsemu.Config{})
	c := ecsClient(t, e)
	ctx := context.Background()
	modify := func(id string, mod func(*ecs.ModifyImageAttributeRequest)) error {
		req := ecs.CreateModifyImageAttributeRequest()
		req.RegionId, req.ImageId = "cn-hangzhou", id
		mod(req)
		_, err := c.ModifyImageAttribute(req)
		return err
	}
	if err := modify(srcB, func(r *ecs.ModifyImageAttributeRequest) { r.Status = "Deprecated"; r.BootMode = "UEFI" }); err != nil {
		t.Fatal(err)
	}
	if ims, _ := e.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou", IDs: []string{srcB}, OwnerAlias: "self"}); len(ims) != 0 {
		t.Error("a deprecated image is in the default listing")
	}
	resp, _ := describe(t, c, "cn-hangzhou", func(r *ecs.DescribeImagesRequest) { r.ImageId = srcB; r.Status = "Deprecated" })
	if resp.TotalCount != 1 || resp.Images.Image[0].BootMode != "UEFI" || resp.Images.Image[0].Status != "Deprecated" {
		t.Fatalf("Status=Deprecated: %+v", resp.Images.Image)
	}
	_, err := e.p.CopyImage(ctx, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcB, DestinationRegion: "cn-beijing"})
	wantError(t, "copy a deprecated image", err, "IncorrectImageStatus", cloud.ClassPermanent, 400)
	wantError(t, "share a deprecated image", e.p.ShareImage(ctx, "cn-hangzhou", srcB, []string{"1234"}), "IncorrectImageStatus", cloud.ClassPermanent, 400)
	if err := modify(srcB, func(r *ecs.ModifyImageAttributeRequest) { r.Status = "Available" }); err != nil {
		t.Fatal(err)
	}
	// Community image: IsPublic=true; not copyable, not deletable.
	sp := ecs.CreateModifyImageSharePermissionRequest()
	sp.RegionId, sp.ImageId, sp.IsPublic = "cn-hangzhou", srcB, requests.NewBoolean(true)
	if _, err := c.ModifyImageSharePermission(sp); err != nil {
		t.Fatal(err)
	}
	_, err = e.p.CopyImage(ctx, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcB, DestinationRegion: "cn-beijing"})
	wantError(t, "copy a community image", err, "OperationDenied.CommunityImage", cloud.ClassPermanent, 400)
	err = e.p.DeleteImage(ctx, "cn-hangzhou", srcB)
	var ce *cloud.Error
	if !errors.As(err, &ce) || ce.Code != "ImageIsPublic" || ce.HTTPStatus != 403 {
		t.Errorf("delete a community image: %v", err)
	}
	sp.IsPublic = requests.NewBoolean(false)
	if _, err := c.ModifyImageSharePermission(sp); err != nil {
		t.Fatal(err)
	}
	if err := e.p.DeleteImage(ctx, "cn-hangzhou", srcB); err != nil {
		t.Fatalf("delete after making it private: %v", err)
	}
	// Catalogue images.
	for name, tc := range map[string]struct {
		id, dst, code string
		status        int
	}{
		"public":               {"ubuntu_22_04_x64_20G_alibase_20240130.vhd", "cn-beijing", "InvalidImageId.NotFound", 404},
		"shared, cross-region": {"m-bp1s8h4r3d0i6m4g2e1s", "cn-beijing", "OperationDenied.SameRegionOnly", 403},
		"marketplace":          {"m-bp1mk7p2l4c6e8t0a2b4", "cn-beijing", "OperationDenied.NotAuthorized", 403},
	} {
		req := ecs.CreateCopyImageRequest()
		req.RegionId, req.ImageId, req.DestinationRegionId = "cn-hangzhou", tc.id, tc.dst
		_, err := c.CopyImage(req)
		wantServerError(t, "copy "+name, err, tc.status, tc.code)
	}
	if err := modify("ubuntu_22_04_x64_20G_alibase_20240130.vhd", func(r *ecs.ModifyImageAttributeRequest) { r.Description = "mine" }); err == nil {
		t.Error("a public image was modified")
	}
}

// Rows: unknown action, unsupported version, Format=XML, HostId,
// x-acs-retry-after, DescribeRegions languages, unknown access key.
func TestConformanceProtocolDetails(t *testing.T) {
	e := newEmu(t, ecsemu.Config{ThrottleRate: 2})
	c := ecsClient(t, e)
	host := strings.TrimPrefix(e.srv.URL, "http://")

	unknown := requests.NewCommonRequest()
	unknown.Domain, unknown.Version, unknown.ApiName, unknown.Scheme = host, "2014-05-26", "DescribeInstanceHistory", "http"
	_, err := c.ProcessCommonRequest(unknown)
	if se := wantServerError(t, "unknown action", err, 404, "InvalidAction.NotFound"); se != nil {
		if se.HostId() != host {
			t.Errorf("HostId %q, want %q", se.HostId(), host)
		}
		if want := "https://api.aliyun.com/troubleshoot?q=InvalidAction.NotFound&product=Ecs&requestId=" + se.RequestId(); se.Recommend() != want {
			t.Errorf("Recommend %q, want %q", se.Recommend(), want)
		}
		if !strings.Contains(se.Message(), "Specified api is not found") {
			t.Errorf("Message %q", se.Message())
		}
	}
	oldVersion := requests.NewCommonRequest()
	oldVersion.Domain, oldVersion.Version, oldVersion.ApiName, oldVersion.Scheme = host, "2013-01-10", "DescribeRegions", "http"
	_, err = c.ProcessCommonRequest(oldVersion)
	wantServerError(t, "unsupported version", err, 400, "InvalidParameter")

	x := ecs.CreateDescribeRegionsRequest()
	x.AcceptFormat = "XML"
	x.AcceptLanguage = "ja"
	regions, err := c.DescribeRegions(x)
	if err != nil || len(regions.Regions.Region) < 20 {
		t.Fatalf("XML DescribeRegions: %v, %d regions", err, len(regions.Regions.Region))
	}
	for _, r := range regions.Regions.Region {
		if r.RegionId == "cn-hangzhou" && r.LocalName != "中国 (杭州)" {
			t.Errorf("ja LocalName %q", r.LocalName)
		}
	}
	// The third call in the minute is throttled, with the wait in ms.
	_, err = c.DescribeRegions(ecs.CreateDescribeRegionsRequest())
	if err == nil {
		_, err = c.DescribeRegions(ecs.CreateDescribeRegionsRequest())
	}
	se := wantServerError(t, "throttled", err, 400, "Throttling.User")
	if se != nil {
		ms, perr := strconv.Atoi(firstHeader(se.RespHeaders, "x-acs-retry-after"))
		if perr != nil || ms <= 0 || ms > 30000 {
			t.Errorf("x-acs-retry-after %v", se.RespHeaders)
		}
	}
}

func firstHeader(h map[string][]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Row: the state file keeps copies and tokens across an emulator restart.
func TestConformanceStateFileRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	e := newEmu(t, ecsemu.Config{StateFile: path})
	ctx := context.Background()
	req := cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing", ClientToken: "tok-restart"}
	id, err := e.p.CopyImage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Close()
	e.emu.Close()
	e2 := newEmu(t, ecsemu.Config{StateFile: path, Clock: e.clk})
	again, err := e2.p.CopyImage(ctx, req)
	if err != nil || again != id {
		t.Fatalf("retry after restart: %s, %v; want %s", again, err, id)
	}
	if im, ok := e2.image(t, "cn-beijing", id); !ok || im.Status != cloud.StatusCreating && im.Status != cloud.StatusWaiting {
		t.Fatalf("copy after restart: %+v %v", im, ok)
	}
	e.clk.Step(3 * time.Hour) // the clock both emulators run on
	if im, _ := e2.image(t, "cn-beijing", id); im.Status != cloud.StatusAvailable {
		t.Fatalf("copy did not finish after the restart: %s", im.Status)
	}
}
