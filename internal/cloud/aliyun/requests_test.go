package aliyun

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
)

func TestCopyImageSendsEveryParameterSigned(t *testing.T) {
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		replyJSON(w, 200, map[string]string{"RequestId": "req-copy", "ImageId": "m-copy0001"})
	})
	p := f.provider()
	id, err := p.CopyImage(context.Background(), cloud.CopyRequest{
		SourceRegion:      "cn-hangzhou",
		SourceImageID:     "m-src0001",
		DestinationRegion: "cn-beijing",
		Name:              "copy of image* ~ +x",
		Description:       "desc with spaces & symbols/é",
		Encrypted:         true,
		KMSKeyID:          "key-1",
		ResourceGroupID:   "rg-1",
		Tags:              map[string]string{"replicatord/source": "m-src0001", "app": "web", "empty": ""},
		ClientToken:       "tok-123",
	})
	if err != nil {
		t.Fatalf("CopyImage: %v", err)
	}
	if id != "m-copy0001" {
		t.Errorf("image id = %q, want m-copy0001", id)
	}
	reqs := f.requests("CopyImage")
	if len(reqs) != 1 {
		t.Fatalf("%d CopyImage requests, want 1", len(reqs))
	}
	q := reqs[0]
	want := map[string]string{
		"RegionId":               "cn-hangzhou",
		"ImageId":                "m-src0001",
		"DestinationRegionId":    "cn-beijing",
		"DestinationImageName":   "copy of image* ~ +x",
		"DestinationDescription": "desc with spaces & symbols/é",
		"Encrypted":              "true",
		"KMSKeyId":               "key-1",
		"ResourceGroupId":        "rg-1",
		"ClientToken":            "tok-123", // signed too: the fake verified the signature
		"Tag.1.Key":              "app",
		"Tag.1.Value":            "web",
		"Tag.2.Key":              "empty",
		"Tag.3.Key":              "replicatord/source",
		"Tag.3.Value":            "m-src0001",
		"Version":                "2014-05-26",
		"AccessKeyId":            testKeyID,
	}
	for k, v := range want {
		if got := q.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, absent := range []string{"DryRun", "SecurityToken", "Tag.4.Key"} {
		if q.Has(absent) {
			t.Errorf("%s sent (%q), want absent", absent, q.Get(absent))
		}
	}
}

func TestCopyImageDryRun(t *testing.T) {
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		if q.Get("DryRun") == "true" {
			ecsError(w, 400, "DryRunOperation", "Request validation has been passed with DryRun flag set.")
			return
		}
		ecsError(w, 403, "QuotaExceed.Image", "The number of images exceeds the limit (100).")
	})
	p := f.provider()
	req := cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: "m-src", DestinationRegion: "cn-beijing", DryRun: true}
	id, err := p.CopyImage(context.Background(), req)
	if err != nil || id != "" {
		t.Fatalf("DryRun CopyImage = %q, %v; want \"\", nil", id, err)
	}
	if got := f.requests("CopyImage")[0].Get("DryRun"); got != "true" {
		t.Errorf("DryRun param = %q", got)
	}
	// Without DryRun, a DryRunOperation would be an error; here the real
	// error comes through.
	req.DryRun = false
	_, err = p.CopyImage(context.Background(), req)
	if cloud.CodeOf(err) != "QuotaExceed.Image" || cloud.ClassOf(err) != cloud.ClassQuota {
		t.Errorf("err = %v, want QuotaExceed.Image/quota", err)
	}
}

func TestSTSCredentialsSendSecurityToken(t *testing.T) {
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		replyJSON(w, 200, map[string]any{"RequestId": "r", "Regions": map[string]any{"Region": []any{}}})
	})
	p := f.provider(func(c *Config) { c.Credentials.SecurityToken = testToken })
	if _, err := p.DescribeRegions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.requests("DescribeRegions")[0].Get("SecurityToken"); got != testToken {
		t.Errorf("SecurityToken = %q, want the STS token", got)
	}
}

// imageJSON is an image as ECS returns it, with the SDK's fuzzy types
// exercised: Size as a string, IsCopied as a string.
func imageJSON(id string) map[string]any {
	return map[string]any{
		"ImageId":      id,
		"ImageName":    "name-" + id,
		"Description":  "d",
		"Status":       "Creating",
		"Progress":     "45%",
		"Size":         "40",
		"IsCopied":     "true",
		"ImageFamily":  "fam",
		"CreationTime": "2026-11-25T06:07:05Z",
		"Tags": map[string]any{"Tag": []any{
			map[string]string{"TagKey": "replicatord/job", "TagValue": "j1"},
			map[string]string{"TagKey": "env", "TagValue": ""},
		}},
		"DiskDeviceMappings": map[string]any{"DiskDeviceMapping": []any{
			map[string]any{"SnapshotId": "s-sys-" + id, "Size": "40", "RemainTime": 120, "Progress": "45%"},
			map[string]any{"SnapshotId": "s-data-" + id, "Size": 100, "RemainTime": "300", "Progress": "10%"},
		}},
	}
}

func TestDescribeImagesConvertsECSFields(t *testing.T) {
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		replyJSON(w, 200, map[string]any{"RequestId": "r", "TotalCount": 1, "PageNumber": 1, "PageSize": "100",
			"Images": map[string]any{"Image": []any{imageJSON("m-1")}}})
	})
	p := f.provider()
	got, err := p.DescribeImages(context.Background(), cloud.ImageQuery{
		Region:     "cn-beijing",
		IDs:        []string{"m-1", "m-2"},
		Statuses:   []string{"Creating", "Waiting", "Available"},
		Name:       "web",
		OwnerAlias: "self",
		Tags:       map[string]string{"replicatord/job": "j1", "a": "b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d images, want 1", len(got))
	}
	im := got[0]
	if im.ID != "m-1" || im.Region != "cn-beijing" || im.Name != "name-m-1" || im.Description != "d" || im.Status != "Creating" || im.Family != "fam" {
		t.Errorf("identity fields wrong: %+v", im)
	}
	if im.ProgressPercent != 45 {
		t.Errorf("progress = %d, want 45", im.ProgressPercent)
	}
	if im.SizeGiB != 40 || !im.IsCopied {
		t.Errorf("size %d copied %t, want 40 true", im.SizeGiB, im.IsCopied)
	}
	if im.RemainTime != 300*time.Second {
		t.Errorf("remain = %v, want 5m (max over disks)", im.RemainTime)
	}
	if want := time.Date(2026, 11, 25, 6, 7, 5, 0, time.UTC); !im.CreationTime.Equal(want) {
		t.Errorf("creation = %v, want %v", im.CreationTime, want)
	}
	if strings.Join(im.SnapshotIDs, ",") != "s-sys-m-1,s-data-m-1" {
		t.Errorf("snapshots = %v", im.SnapshotIDs)
	}
	if len(im.Tags) != 2 || im.Tags["replicatord/job"] != "j1" || im.Tags["env"] != "" {
		t.Errorf("tags = %v", im.Tags)
	}
	q := f.requests("DescribeImages")[0]
	want := map[string]string{
		"RegionId": "cn-beijing", "ImageId": "m-1,m-2", "Status": "Creating,Waiting,Available",
		"ImageName": "web", "ImageOwnerAlias": "self", "PageSize": "100", "PageNumber": "1",
		"Tag.1.Key": "a", "Tag.1.Value": "b", "Tag.2.Key": "replicatord/job", "Tag.2.Value": "j1",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
}

func TestDescribeImagesFetchesEveryPage(t *testing.T) {
	const total = 250
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		size, _ := strconv.Atoi(q.Get("PageSize"))
		page, _ := strconv.Atoi(q.Get("PageNumber"))
		var images []any
		for i := (page - 1) * size; i < min(page*size, total); i++ {
			images = append(images, map[string]any{"ImageId": fmt.Sprintf("m-%04d", i), "Status": "Available"})
		}
		replyJSON(w, 200, map[string]any{"RequestId": "r" + q.Get("PageNumber"), "TotalCount": total, "PageNumber": page, "PageSize": size,
			"Images": map[string]any{"Image": images}})
	})
	var mu sync.Mutex
	var calls []Call
	p := f.provider(func(c *Config) {
		c.Observer = func(call Call) { mu.Lock(); calls = append(calls, call); mu.Unlock() }
	})
	got, err := p.DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-beijing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Fatalf("%d images, want %d", len(got), total)
	}
	seen := map[string]bool{}
	for _, im := range got {
		seen[im.ID] = true
	}
	if len(seen) != total {
		t.Errorf("%d distinct images, want %d", len(seen), total)
	}
	var pages []string
	for _, q := range f.requests("DescribeImages") {
		pages = append(pages, q.Get("PageNumber"))
	}
	if strings.Join(pages, ",") != "1,2,3" {
		t.Errorf("pages requested %v, want 1,2,3", pages)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 3 {
		t.Fatalf("observer saw %d calls, want 3 (one per page)", len(calls))
	}
	for i, c := range calls {
		if c.Action != "DescribeImages" || c.Region != "cn-beijing" || c.HTTPStatus != 200 || c.Err != nil || c.RequestID != "r"+strconv.Itoa(i+1) {
			t.Errorf("call %d = %+v", i, c)
		}
	}
}

// TestDescribeImagesStopsOnShortAnswer: a TotalCount larger than what the
// pages hold (images deleted while paging) must not loop forever.
func TestDescribeImagesStopsOnShortAnswer(t *testing.T) {
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		var images []any
		if q.Get("PageNumber") == "1" {
			images = []any{map[string]any{"ImageId": "m-1"}, map[string]any{"ImageId": "m-2"}}
		}
		replyJSON(w, 200, map[string]any{"RequestId": "r", "TotalCount": 500, "Images": map[string]any{"Image": images}})
	})
	got, err := f.provider().DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-beijing"})
	if err != nil || len(got) != 2 {
		t.Fatalf("got %d images, %v; want 2, nil", len(got), err)
	}
	if n := len(f.requests("DescribeImages")); n != 2 {
		t.Errorf("%d calls, want 2 (the second page came back empty)", n)
	}
}

func TestInvalidArgumentsAreRejectedBeforeAnyCall(t *testing.T) {
	f := newFakeECS(t, nil)
	p := f.provider()
	ctx := context.Background()
	ids := make([]string, cloud.MaxIDsPerDescribe+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("m-%d", i)
	}
	manyTags := map[string]string{}
	for i := range 21 {
		manyTags[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []struct {
		name  string
		field string
		call  func() error
	}{
		{"101 ids", "IDs", func() error {
			_, err := p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-beijing", IDs: ids})
			return err
		}},
		{"id with comma", "IDs", func() error {
			_, err := p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-beijing", IDs: []string{"m-1,m-2"}})
			return err
		}},
		{"empty region", "Region", func() error { _, err := p.DescribeImages(ctx, cloud.ImageQuery{}); return err }},
		{"region that would change the host", "region", func() error { return p.DeleteImage(ctx, "evil.example.com/x", "m-1") }},
		{"empty image id", "imageID", func() error { return p.CancelCopyImage(ctx, "cn-beijing", "") }},
		{"21 copy tags", "Tags", func() error {
			_, err := p.CopyImage(ctx, cloud.CopyRequest{SourceRegion: "a", DestinationRegion: "b", SourceImageID: "m-1", Tags: manyTags})
			return err
		}},
		{"long client token", "ClientToken", func() error {
			_, err := p.CopyImage(ctx, cloud.CopyRequest{SourceRegion: "a", DestinationRegion: "b", SourceImageID: "m-1", ClientToken: strings.Repeat("x", 65)})
			return err
		}},
		{"missing destination", "DestinationRegion", func() error {
			_, err := p.CopyImage(ctx, cloud.CopyRequest{SourceRegion: "a", SourceImageID: "m-1"})
			return err
		}},
		{"empty tag key", "tags", func() error { return p.TagImages(ctx, "cn-beijing", []string{"m-1"}, map[string]string{"": "v"}) }},
		{"empty family", "family", func() error { return p.SetImageFamily(ctx, "cn-beijing", "m-1", "") }},
		{"account with space", "accounts", func() error { return p.ShareImage(ctx, "cn-beijing", "m-1", []string{"12 34"}) }},
	}
	for _, c := range cases {
		err := c.call()
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want invalid argument", c.name, err)
			continue
		}
		if errdefs.Field(err) != c.field {
			t.Errorf("%s: field = %q, want %q", c.name, errdefs.Field(err), c.field)
		}
	}
	if n := len(f.requests("")); n != 0 {
		t.Errorf("%d requests reached the server, want 0", n)
	}
}

func TestTagImagesSplitsByECSLimits(t *testing.T) {
	f := newFakeECS(t, nil)
	p := f.provider()
	ids := make([]string, 120)
	for i := range ids {
		ids[i] = fmt.Sprintf("m-%03d", i)
	}
	tags := map[string]string{}
	for i := range 45 {
		tags[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("v%d", i)
	}
	if err := p.TagImages(context.Background(), "cn-beijing", ids, tags); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests("TagResources")
	if len(reqs) != 9 { // ceil(120/50) * ceil(45/20)
		t.Fatalf("%d TagResources calls, want 9", len(reqs))
	}
	covered := map[string]bool{} // "id/key=value"
	for _, q := range reqs {
		if q.Get("ResourceType") != "image" || q.Get("RegionId") != "cn-beijing" {
			t.Errorf("ResourceType %q RegionId %q", q.Get("ResourceType"), q.Get("RegionId"))
		}
		var rids, pairs []string
		for n := 1; q.Has("ResourceId." + strconv.Itoa(n)); n++ {
			rids = append(rids, q.Get("ResourceId."+strconv.Itoa(n)))
		}
		for n := 1; q.Has("Tag." + strconv.Itoa(n) + ".Key"); n++ {
			pairs = append(pairs, q.Get("Tag."+strconv.Itoa(n)+".Key")+"="+q.Get("Tag."+strconv.Itoa(n)+".Value"))
		}
		if len(rids) > 50 || len(pairs) > 20 || len(rids) == 0 || len(pairs) == 0 {
			t.Errorf("call with %d ids and %d tags", len(rids), len(pairs))
		}
		for _, id := range rids {
			for _, p := range pairs {
				covered[id+"/"+p] = true
			}
		}
	}
	for _, id := range ids {
		for k, v := range tags {
			if !covered[id+"/"+k+"="+v] {
				t.Fatalf("%s never got %s=%s", id, k, v)
			}
		}
	}
	if len(covered) != 120*45 {
		t.Errorf("%d id/tag pairs, want %d", len(covered), 120*45)
	}
}

func TestShareImageSplitsByTen(t *testing.T) {
	f := newFakeECS(t, nil)
	p := f.provider()
	var accounts []string
	for i := range 25 {
		accounts = append(accounts, strconv.Itoa(1000000+i))
	}
	if err := p.ShareImage(context.Background(), "cn-beijing", "m-1", accounts); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests("ModifyImageSharePermission")
	var sizes []int
	var got []string
	for _, q := range reqs {
		n := 0
		for ; q.Has("AddAccount." + strconv.Itoa(n+1)); n++ {
			got = append(got, q.Get("AddAccount."+strconv.Itoa(n+1)))
		}
		sizes = append(sizes, n)
		if q.Get("ImageId") != "m-1" || q.Get("RegionId") != "cn-beijing" {
			t.Errorf("ImageId %q RegionId %q", q.Get("ImageId"), q.Get("RegionId"))
		}
	}
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Errorf("accounts per call %v, want [10 10 5]", sizes)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(accounts, ",") {
		t.Errorf("accounts shared %v", got)
	}
	// Nothing to share: no call.
	if err := p.ShareImage(context.Background(), "cn-beijing", "m-1", nil); err != nil || len(f.requests("ModifyImageSharePermission")) != 3 {
		t.Errorf("empty share: %v, %d calls", err, len(f.requests("ModifyImageSharePermission")))
	}
}

func TestSimpleActionsSendTheirParameters(t *testing.T) {
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		if q.Get("Action") == "DescribeRegions" {
			replyJSON(w, 200, map[string]any{"RequestId": "r", "Regions": map[string]any{"Region": []any{
				map[string]string{"RegionId": "cn-beijing", "LocalName": "China (Beijing)", "Status": "available"},
				map[string]string{"RegionId": "eu-central-1", "LocalName": "Germany (Frankfurt)", "Status": "soldOut"},
			}}})
			return
		}
		replyJSON(w, 200, map[string]string{"RequestId": "r"})
	})
	p := f.provider()
	ctx := context.Background()
	if err := p.CancelCopyImage(ctx, "cn-beijing", "m-copy"); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteImage(ctx, "cn-shanghai", "m-old"); err != nil {
		t.Fatal(err)
	}
	if err := p.SetImageFamily(ctx, "cn-beijing", "m-copy", "web-family"); err != nil {
		t.Fatal(err)
	}
	regions, err := p.DescribeRegions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []cloud.Region{{ID: "cn-beijing", LocalName: "China (Beijing)", Status: "available"}, {ID: "eu-central-1", LocalName: "Germany (Frankfurt)", Status: "soldOut"}}
	if fmt.Sprint(regions) != fmt.Sprint(want) {
		t.Errorf("regions = %v, want %v", regions, want)
	}
	check := func(action string, want map[string]string) {
		t.Helper()
		reqs := f.requests(action)
		if len(reqs) != 1 {
			t.Fatalf("%d %s requests", len(reqs), action)
		}
		for k, v := range want {
			if reqs[0].Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", action, k, reqs[0].Get(k), v)
			}
		}
	}
	check("CancelCopyImage", map[string]string{"RegionId": "cn-beijing", "ImageId": "m-copy"})
	check("DeleteImage", map[string]string{"RegionId": "cn-shanghai", "ImageId": "m-old"})
	check("ModifyImageAttribute", map[string]string{"RegionId": "cn-beijing", "ImageId": "m-copy", "ImageFamily": "web-family"})
	check("DescribeRegions", map[string]string{"AcceptLanguage": "en-US"})
	if f.requests("DeleteImage")[0].Has("Force") {
		t.Error("DeleteImage sent Force")
	}
}

func TestUserAgentIsAppended(t *testing.T) {
	got := make(chan string, 1)
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		got <- r.Header.Get("User-Agent")
		replyJSON(w, 200, map[string]string{"RequestId": "r"})
	})
	p := f.provider(func(c *Config) { c.UserAgent = "replicatord/1.2.3" })
	if err := p.DeleteImage(context.Background(), "cn-beijing", "m-1"); err != nil {
		t.Fatal(err)
	}
	if ua := <-got; !strings.Contains(ua, "AlibabaCloud") || !strings.Contains(ua, "replicatord/1.2.3") {
		t.Errorf("User-Agent = %q", ua)
	}
}
