package aliyun

// The conformance suite (issue #3): the real SDK, through this adapter,
// against the emulator over real HTTP, for every Provider method and every
// emulator error a Provider call can provoke. Each error is checked for code,
// class and HTTP status, the three things the engine acts on.
//
// The emulator is an independent reading of the ECS reference (it never
// imports the SDK), so a pass here means the SDK, the adapter and the
// reference agree on the wire: signing, parameter names and flattening,
// status codes, JSON field names and types.

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/ecsemu"
)

// fixtureID builds an emulator-valid image id: "m-" and 20 characters.
func fixtureID(prefix string, n int) string {
	return fmt.Sprintf("m-%s%0*d", prefix, 20-len(prefix), n)
}

var (
	emuStart  = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	srcA      = fixtureID("bp1", 1) // 40 GiB, Available, cn-hangzhou
	srcB      = fixtureID("bp1", 2) // 20 GiB, Available, cn-hangzhou
	building  = fixtureID("bp1", 3) // still Creating
	huge      = fixtureID("bp1", 4) // 500 GiB, above the 200 GiB default limit
	inBeijing = fixtureID("2ze", 5) // an original (not a copy) in cn-beijing
)

func conformanceFixtures() []ecsemu.FixtureImage {
	created := time.Date(2026, 11, 1, 3, 12, 45, 0, time.UTC)
	return []ecsemu.FixtureImage{
		{Region: "cn-hangzhou", ID: srcA, Name: "golden-a", SizeGiB: 40, Status: "Available", Family: "golden",
			Description: "golden image A", Tags: map[string]string{"role": "golden"}, CreationTime: created},
		{Region: "cn-hangzhou", ID: srcB, Name: "golden-b", SizeGiB: 20, Status: "Available", CreationTime: created},
		{Region: "cn-hangzhou", ID: building, Name: "building-c", SizeGiB: 40, Status: "Creating", CreationTime: created},
		{Region: "cn-hangzhou", ID: huge, Name: "huge-d", SizeGiB: 500, Status: "Available", CreationTime: created},
		{Region: "cn-beijing", ID: inBeijing, Name: "taken-name", SizeGiB: 40, Status: "Available",
			Tags: map[string]string{"role": "local"}, CreationTime: created},
	}
}

type emuEnv struct {
	emu *ecsemu.Emulator
	srv *httptest.Server
	clk *clock.Fake
	p   *Provider
}

// newEmu starts an emulator with the conformance fixtures, a fake clock for
// copy progress (requests are still signed and checked against the wall
// clock), throttling off unless cfg sets it, and a Provider pointed at it.
func newEmu(t *testing.T, cfg ecsemu.Config, mods ...func(*Config)) *emuEnv {
	t.Helper()
	clk := clock.NewFake(emuStart)
	if cfg.Credentials == nil {
		cfg.Credentials = map[string]string{testKeyID: testSecret}
	}
	if cfg.Clock == nil {
		cfg.Clock = clk
	}
	if cfg.AuthClock == nil {
		cfg.AuthClock = clock.Real{}
	}
	if cfg.Images == nil {
		cfg.Images = conformanceFixtures()
	}
	if cfg.ThrottleRate == 0 {
		cfg.ThrottleRate = -1
	}
	emu, err := ecsemu.New(cfg)
	if err != nil {
		t.Fatalf("ecsemu.New: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	t.Cleanup(emu.Close) // runs first: releases hung requests
	pc := Config{Endpoint: srv.URL, Insecure: true, ReadTimeout: 5 * time.Second,
		Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret}}
	for _, m := range mods {
		m(&pc)
	}
	p, err := New(pc)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return &emuEnv{emu: emu, srv: srv, clk: clk, p: p}
}

// wantError checks code, class and HTTP status of a failed call.
func wantError(t *testing.T, what string, err error, code string, class cloud.Class, status int) {
	t.Helper()
	var ce *cloud.Error
	if !errors.As(err, &ce) {
		t.Errorf("%s: err = %v, want *cloud.Error %s", what, err, code)
		return
	}
	if ce.Code != code || ce.Class != class || ce.HTTPStatus != status {
		t.Errorf("%s: got %s/%v/%d (%s), want %s/%v/%d", what, ce.Code, ce.Class, ce.HTTPStatus, ce.Message, code, class, status)
	}
	if ce.RequestID == "" && status != 0 {
		t.Errorf("%s: no RequestId", what)
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Errorf("%s: secret in error", what)
	}
}

func (e *emuEnv) image(t *testing.T, region, id string) (cloud.Image, bool) {
	t.Helper()
	ims, err := e.p.DescribeImages(context.Background(), cloud.ImageQuery{Region: region, IDs: []string{id}, Statuses: cloud.AllStatuses})
	if err != nil {
		t.Fatalf("DescribeImages %s/%s: %v", region, id, err)
	}
	if len(ims) == 0 {
		return cloud.Image{}, false
	}
	if len(ims) > 1 {
		t.Fatalf("DescribeImages %s/%s: %d images", region, id, len(ims))
	}
	return ims[0], true
}

func (e *emuEnv) mustCopy(t *testing.T, req cloud.CopyRequest) string {
	t.Helper()
	id, err := e.p.CopyImage(context.Background(), req)
	if err != nil {
		t.Fatalf("CopyImage %s -> %s: %v", req.SourceImageID, req.DestinationRegion, err)
	}
	if !strings.HasPrefix(id, "m-") {
		t.Fatalf("CopyImage returned id %q", id)
	}
	return id
}

func TestConformanceLifecycle(t *testing.T) {
	env := newEmu(t, ecsemu.Config{})
	ctx := context.Background()

	regions, err := env.p.DescribeRegions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(regions) != len(ecsemu.RegionIDs()) {
		t.Errorf("%d regions, want %d", len(regions), len(ecsemu.RegionIDs()))
	}
	var beijing cloud.Region
	for _, r := range regions {
		if r.ID == "cn-beijing" {
			beijing = r
		}
	}
	if beijing.LocalName != "China (Beijing)" || beijing.Status != "available" {
		t.Errorf("cn-beijing = %+v (English names were asked for)", beijing)
	}

	src, ok := env.image(t, "cn-hangzhou", srcA)
	if !ok {
		t.Fatal("source image not listed")
	}
	if src.Status != cloud.StatusAvailable || src.SizeGiB != 40 || src.Family != "golden" || src.Tags["role"] != "golden" ||
		src.IsCopied || len(src.SnapshotIDs) != 1 || src.Name != "golden-a" || src.Description != "golden image A" ||
		!src.CreationTime.Equal(time.Date(2026, 11, 1, 3, 12, 45, 0, time.UTC)) || src.ProgressPercent != 100 {
		t.Errorf("source = %+v", src)
	}

	// Default Status filter: Available only; Creating shows with the filter.
	ims, err := env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou", OwnerAlias: "self"})
	if err != nil || len(ims) != 3 {
		t.Errorf("own Available images in cn-hangzhou: %d, %v; want 3", len(ims), err)
	}
	// Without an owner alias ECS lists public and shared images too (not
	// marketplace ones), and the adapter pages through all of them.
	sys, others, _ := ecsemu.CatalogSize("cn-hangzhou")
	ims, err = env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou"})
	if err != nil || len(ims) != 3+sys+others {
		t.Errorf("every Available image in cn-hangzhou: %d, %v; want %d", len(ims), err, 3+sys+others)
	}
	ims, err = env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou", Name: "golden", Tags: map[string]string{"role": "golden"}})
	if err != nil || len(ims) != 1 || ims[0].ID != srcA {
		t.Errorf("name+tag filter: %v, %v", ims, err)
	}

	lineage := map[string]string{"replicatord/source": srcA, "replicatord/job": "job-1"}
	req := cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing",
		Name: "golden-a-copy", Description: "copy of A", Tags: lineage, ClientToken: "tok-1"}
	copyID := env.mustCopy(t, req)
	if again := env.mustCopy(t, req); again != copyID {
		t.Errorf("same ClientToken gave %s, then %s", copyID, again)
	}
	other := req
	other.Name = "golden-a-other"
	_, err = env.p.CopyImage(ctx, other)
	wantError(t, "same token, other parameters", err, "IdempotentParameterMismatch", cloud.ClassPermanent, 400)

	cp, ok := env.image(t, "cn-beijing", copyID)
	if !ok {
		t.Fatal("copy not listed")
	}
	if cp.Status != cloud.StatusCreating || !cp.IsCopied || cp.Name != "golden-a-copy" || cp.Description != "copy of A" ||
		cp.Tags["replicatord/source"] != srcA || cp.Tags["replicatord/job"] != "job-1" || cp.ProgressPercent >= 100 || cp.RemainTime <= 0 ||
		cp.Family != "" || len(cp.SnapshotIDs) != 1 || cp.SizeGiB != 40 {
		t.Errorf("fresh copy = %+v", cp)
	}

	env.clk.Step(400 * time.Second)
	mid, _ := env.image(t, "cn-beijing", copyID)
	if mid.Status != cloud.StatusCreating || mid.ProgressPercent <= cp.ProgressPercent || mid.ProgressPercent >= 100 || mid.RemainTime >= cp.RemainTime {
		t.Errorf("copy half way: %d%% %v (was %d%% %v)", mid.ProgressPercent, mid.RemainTime, cp.ProgressPercent, cp.RemainTime)
	}
	wantError(t, "DeleteImage on a copy in flight", env.p.DeleteImage(ctx, "cn-beijing", copyID), "OperationDenied.ImageCopying", cloud.ClassQuota, 403)

	env.clk.Step(time.Hour)
	done, _ := env.image(t, "cn-beijing", copyID)
	if done.Status != cloud.StatusAvailable || done.ProgressPercent != 100 || done.RemainTime != 0 {
		t.Errorf("finished copy = %+v", done)
	}
	wantError(t, "CancelCopyImage on a finished copy", env.p.CancelCopyImage(ctx, "cn-beijing", copyID), "IncorrectImageStatus", cloud.ClassPermanent, 400)
	wantError(t, "CancelCopyImage on an original", env.p.CancelCopyImage(ctx, "cn-beijing", inBeijing), "ImageCreatedNotFromCopy", cloud.ClassPermanent, 400)

	if err := env.p.TagImages(ctx, "cn-beijing", []string{copyID, inBeijing}, map[string]string{"replicatord/state": "done"}); err != nil {
		t.Fatal(err)
	}
	if err := env.p.SetImageFamily(ctx, "cn-beijing", copyID, "golden"); err != nil {
		t.Fatal(err)
	}
	done, _ = env.image(t, "cn-beijing", copyID)
	local, _ := env.image(t, "cn-beijing", inBeijing)
	if done.Family != "golden" || done.Tags["replicatord/state"] != "done" || done.Tags["replicatord/source"] != srcA || local.Tags["replicatord/state"] != "done" {
		t.Errorf("after tag and family: copy %+v, local %+v", done, local)
	}
	byTag, err := env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-beijing", Tags: map[string]string{"replicatord/job": "job-1"}})
	if err != nil || len(byTag) != 1 || byTag[0].ID != copyID {
		t.Errorf("lineage tag lookup: %v, %v", byTag, err)
	}

	if err := env.p.ShareImage(ctx, "cn-beijing", copyID, []string{"1234567890123456"}); err != nil {
		t.Fatal(err)
	}
	wantError(t, "DeleteImage on a shared image", env.p.DeleteImage(ctx, "cn-beijing", copyID), "ImageUseShared", cloud.ClassPermanent, 403)

	// A second copy, finished and deleted.
	copy2 := env.mustCopy(t, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcB, DestinationRegion: "cn-beijing"})
	env.clk.Step(time.Hour)
	if err := env.p.DeleteImage(ctx, "cn-beijing", copy2); err != nil {
		t.Fatal(err)
	}
	if im, ok := env.image(t, "cn-beijing", copy2); ok {
		t.Errorf("deleted image still listed: %+v", im)
	}
	if err := env.p.DeleteImage(ctx, "cn-beijing", fixtureID("2ze", 99)); err != nil {
		t.Errorf("DeleteImage of an unknown image (ECS ignores it): %v", err)
	}

	// A third copy, cancelled while in flight.
	copy3 := env.mustCopy(t, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcB, DestinationRegion: "cn-shanghai"})
	if err := env.p.CancelCopyImage(ctx, "cn-shanghai", copy3); err != nil {
		t.Fatal(err)
	}
	if im, ok := env.image(t, "cn-shanghai", copy3); ok {
		t.Errorf("cancelled copy still listed: %+v", im)
	}
	wantError(t, "CancelCopyImage twice", env.p.CancelCopyImage(ctx, "cn-shanghai", copy3), "InvalidImageId.NotFound", cloud.ClassNotFound, 404)
}

func TestConformanceCopyErrors(t *testing.T) {
	base := cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing"}
	with := func(f func(*cloud.CopyRequest)) cloud.CopyRequest { r := base; f(&r); return r }
	cases := []struct {
		name   string
		cfg    ecsemu.Config
		before func(t *testing.T, env *emuEnv) // provokes the state the error needs
		req    cloud.CopyRequest
		code   string
		class  cloud.Class
		status int
	}{
		{name: "unknown source", req: with(func(r *cloud.CopyRequest) { r.SourceImageID = fixtureID("bp1", 77) }),
			code: "InvalidImageId.NotFound", class: cloud.ClassNotFound, status: 404},
		{name: "source not Available", req: with(func(r *cloud.CopyRequest) { r.SourceImageID = building }),
			code: "IncorrectImageStatus", class: cloud.ClassPermanent, status: 400},
		{name: "source too large", req: with(func(r *cloud.CopyRequest) { r.SourceImageID = huge }),
			code: "SizeExceed.Image", class: cloud.ClassPermanent, status: 403},
		{name: "mainland-only rule", cfg: ecsemu.Config{ComplianceRule: ecsemu.ComplianceMainlandOnly},
			req:  with(func(r *cloud.CopyRequest) { r.DestinationRegion = "eu-central-1" }),
			code: "OperationDenied.NonCompliantDestinationRegion", class: cloud.ClassPermanent, status: 403},
		{name: "denied route", cfg: ecsemu.Config{DeniedRoutes: []string{"cn-hangzhou>cn-beijing"}}, req: base,
			code: "OperationDenied.NonCompliantDestinationRegion", class: cloud.ClassPermanent, status: 403},
		{name: "same region", req: with(func(r *cloud.CopyRequest) { r.DestinationRegion = "cn-hangzhou" }),
			code: "IncorrectDestinationRegion", class: cloud.ClassPermanent, status: 403},
		{name: "unknown destination", req: with(func(r *cloud.CopyRequest) { r.DestinationRegion = "xx-nowhere-1" }),
			code: "DestinationRegion.NotFound", class: cloud.ClassPermanent, status: 400},
		{name: "unknown source region", req: with(func(r *cloud.CopyRequest) { r.SourceRegion = "xx-nowhere-1" }),
			code: "SourceRegion.NotFound", class: cloud.ClassPermanent, status: 400},
		{name: "name taken", req: with(func(r *cloud.CopyRequest) { r.Name = "taken-name" }),
			code: "InvalidImageName.Duplicated", class: cloud.ClassPermanent, status: 400},
		{name: "malformed name", req: with(func(r *cloud.CopyRequest) { r.Name = "1-starts-with-a-digit" }),
			code: "InvalidImageName.Malformed", class: cloud.ClassPermanent, status: 400},
		{name: "malformed description", req: with(func(r *cloud.CopyRequest) { r.Description = "http://example.com" }),
			code: "InvalidDescription.Malformed", class: cloud.ClassPermanent, status: 400},
		{name: "KMS key without encryption", req: with(func(r *cloud.CopyRequest) { r.KMSKeyID = "key-1" }),
			code: "InvalidEncrypted.NotMatchKmsKeyId", class: cloud.ClassPermanent, status: 400},
		{name: "unknown KMS key", req: with(func(r *cloud.CopyRequest) { r.Encrypted = true; r.KMSKeyID = strings.Repeat("k", 129) }),
			code: "InvalidParameter.KMSKeyId.NotFound", class: cloud.ClassPermanent, status: 404},
		{name: "unknown resource group", req: with(func(r *cloud.CopyRequest) { r.ResourceGroupID = "not-a-group" }),
			code: "InvalidResourceGroup.NotFound", class: cloud.ClassPermanent, status: 404},
		{name: "malformed tag key", req: with(func(r *cloud.CopyRequest) { r.Tags = map[string]string{"aliyun-reserved": "x"} }),
			code: "InvalidTagKey.Malformed", class: cloud.ClassPermanent, status: 400},
		{name: "image quota", cfg: ecsemu.Config{ImageQuotaPerRegion: 1}, req: base,
			code: "QuotaExceed.Image", class: cloud.ClassQuota, status: 403},
		{name: "copy conflict", cfg: ecsemu.Config{CopyConflict: true},
			before: func(t *testing.T, env *emuEnv) {
				env.mustCopy(t, with(func(r *cloud.CopyRequest) { r.DestinationRegion = "cn-shanghai" }))
			},
			req: base, code: "OperationDenied.ImageCopyConflict", class: cloud.ClassQuota, status: 400},
		{name: "DryRun still checks", req: with(func(r *cloud.CopyRequest) { r.SourceImageID = huge; r.DryRun = true }),
			code: "SizeExceed.Image", class: cloud.ClassPermanent, status: 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newEmu(t, c.cfg)
			if c.before != nil {
				c.before(t, env)
			}
			_, err := env.p.CopyImage(context.Background(), c.req)
			wantError(t, c.name, err, c.code, c.class, c.status)
		})
	}
}

func TestConformanceDryRun(t *testing.T) {
	env := newEmu(t, ecsemu.Config{})
	id, err := env.p.CopyImage(context.Background(), cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing", DryRun: true})
	if err != nil || id != "" {
		t.Fatalf("DryRun = %q, %v; want \"\", nil", id, err)
	}
	ims, err := env.p.DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-beijing", Statuses: cloud.AllStatuses, OwnerAlias: "self"})
	if err != nil || len(ims) != 1 || ims[0].ID != inBeijing {
		t.Errorf("after DryRun cn-beijing holds %v, %v; want only the fixture", ims, err)
	}
}

func TestConformanceCopyStates(t *testing.T) {
	t.Run("Waiting behind a busy slot", func(t *testing.T) {
		env := newEmu(t, ecsemu.Config{CopySlotsPerRegion: 1})
		first := env.mustCopy(t, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing"})
		second := env.mustCopy(t, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcB, DestinationRegion: "cn-beijing"})
		a, _ := env.image(t, "cn-beijing", first)
		b, _ := env.image(t, "cn-beijing", second)
		if a.Status != cloud.StatusCreating || b.Status != cloud.StatusWaiting {
			t.Errorf("statuses %s, %s; want Creating, Waiting", a.Status, b.Status)
		}
		env.clk.Step(3 * time.Hour)
		b, _ = env.image(t, "cn-beijing", second)
		if b.Status != cloud.StatusAvailable {
			t.Errorf("queued copy ended %s", b.Status)
		}
	})
	t.Run("CreateFailed", func(t *testing.T) {
		env := newEmu(t, ecsemu.Config{CreateFailedRate: 1})
		id := env.mustCopy(t, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing"})
		env.clk.Step(3 * time.Hour)
		im, _ := env.image(t, "cn-beijing", id)
		if im.Status != cloud.StatusCreateFailed {
			t.Errorf("status %s, want CreateFailed", im.Status)
		}
		wantError(t, "cancel a failed copy", env.p.CancelCopyImage(context.Background(), "cn-beijing", id), "IncorrectImageStatus", cloud.ClassPermanent, 400)
	})
	t.Run("CancelNotSupported", func(t *testing.T) {
		env := newEmu(t, ecsemu.Config{CancelNotSupportedRate: 1})
		id := env.mustCopy(t, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing"})
		wantError(t, "cancel", env.p.CancelCopyImage(context.Background(), "cn-beijing", id), "CancelNotSupported", cloud.ClassPermanent, 400)
	})
}

func TestConformanceOtherErrors(t *testing.T) {
	env := newEmu(t, ecsemu.Config{})
	ctx := context.Background()

	_, err := env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "xx-nowhere-1"})
	wantError(t, "DescribeImages unknown region", err, "InvalidRegionId.NotFound", cloud.ClassPermanent, 404)
	_, err = env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou", OwnerAlias: "nobody"})
	wantError(t, "DescribeImages bad owner alias", err, "InvalidImageOwnerAlias.ValueNotSupported", cloud.ClassPermanent, 400)
	_, err = env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou", Statuses: []string{"Bogus"}})
	wantError(t, "DescribeImages bad status", err, "InvalidParameter", cloud.ClassPermanent, 400)

	wantError(t, "TagImages unknown image", env.p.TagImages(ctx, "cn-hangzhou", []string{fixtureID("bp1", 77)}, map[string]string{"k": "v"}),
		"InvalidResourceId.NotFound", cloud.ClassNotFound, 404)
	many := map[string]string{}
	for i := range 20 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	wantError(t, "TagImages over 20 tags on one image", env.p.TagImages(ctx, "cn-hangzhou", []string{srcA}, many),
		"InvalidTagCount", cloud.ClassPermanent, 400)

	wantError(t, "SetImageFamily malformed", env.p.SetImageFamily(ctx, "cn-hangzhou", srcB, "1bad"), "InvalidImageFamily.Malformed", cloud.ClassPermanent, 400)
	wantError(t, "SetImageFamily unknown image", env.p.SetImageFamily(ctx, "cn-hangzhou", fixtureID("bp1", 77), "fam"), "InvalidImageId.NotFound", cloud.ClassNotFound, 404)

	wantError(t, "ShareImage bad account", env.p.ShareImage(ctx, "cn-hangzhou", srcB, []string{"not-a-number"}), "InvalidAccount.NotFound", cloud.ClassPermanent, 400)
	wantError(t, "ShareImage image not Available", env.p.ShareImage(ctx, "cn-hangzhou", building, []string{"1234"}), "IncorrectImageStatus", cloud.ClassPermanent, 400)
	var accounts []string
	for i := range 51 {
		accounts = append(accounts, fmt.Sprint(100000+i))
	}
	wantError(t, "ShareImage over 50 accounts", env.p.ShareImage(ctx, "cn-hangzhou", srcB, accounts), "QuotaExceed.ShareImageUser", cloud.ClassPermanent, 403)
}

func TestConformanceProtocolErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("wrong secret", func(t *testing.T) {
		env := newEmu(t, ecsemu.Config{}, func(c *Config) { c.Credentials.AccessKeySecret = "wrong-secret-value" })
		_, err := env.p.DescribeRegions(ctx)
		wantError(t, "wrong secret", err, "SignatureDoesNotMatch", cloud.ClassPermanent, 400)
		if err != nil && (strings.Contains(err.Error(), "string to sign") || strings.Contains(err.Error(), "wrong-secret-value")) {
			t.Errorf("message keeps the signature dump or the secret: %v", err)
		}
	})
	t.Run("unknown access key", func(t *testing.T) {
		env := newEmu(t, ecsemu.Config{}, func(c *Config) { c.Credentials.AccessKeyID = "LTAIunknown000" })
		_, err := env.p.DescribeRegions(ctx)
		wantError(t, "unknown key", err, "InvalidAccessKeyId.NotFound", cloud.ClassPermanent, 400)
	})
	t.Run("clock skew", func(t *testing.T) {
		env := newEmu(t, ecsemu.Config{AuthClock: clock.NewFake(time.Now().Add(time.Hour))})
		_, err := env.p.DescribeRegions(ctx)
		wantError(t, "timestamp an hour off", err, "InvalidTimeStamp.Expired", cloud.ClassPermanent, 400)
	})
	for _, code := range []string{"Throttling.User", "Throttling"} {
		t.Run(code, func(t *testing.T) {
			env := newEmu(t, ecsemu.Config{ThrottleRate: 1, ThrottleCode: code})
			if _, err := env.p.DescribeRegions(ctx); err != nil {
				t.Fatalf("first call: %v", err)
			}
			_, err := env.p.DescribeRegions(ctx)
			wantError(t, "second call in the minute", err, code, cloud.ClassThrottled, 400)
		})
	}
}

func TestConformanceFaults(t *testing.T) {
	ctx := context.Background()
	all := func(f ecsemu.Fault) ecsemu.Config { return ecsemu.Config{Faults: map[string]ecsemu.Fault{"*": f}} }
	t.Run("InternalError", func(t *testing.T) {
		env := newEmu(t, all(ecsemu.Fault{InternalErrorRate: 1}))
		_, err := env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou"})
		wantError(t, "internal error", err, "InternalError", cloud.ClassRetryable, 500)
	})
	t.Run("ServiceUnavailable", func(t *testing.T) {
		env := newEmu(t, all(ecsemu.Fault{UnavailableRate: 1}))
		_, err := env.p.CopyImage(ctx, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing"})
		wantError(t, "unavailable", err, "ServiceUnavailable", cloud.ClassRetryable, 503)
	})
	t.Run("dropped connection", func(t *testing.T) {
		env := newEmu(t, all(ecsemu.Fault{DropRate: 1}))
		err := env.p.DeleteImage(ctx, "cn-hangzhou", srcB)
		wantError(t, "drop", err, CodeTransport, cloud.ClassRetryable, 0)
	})
	t.Run("hung request", func(t *testing.T) {
		env := newEmu(t, all(ecsemu.Fault{HangRate: 1}), func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
		err := env.p.CancelCopyImage(ctx, "cn-beijing", inBeijing)
		wantError(t, "hang", err, CodeTimeout, cloud.ClassRetryable, 0)
	})
	t.Run("latency beyond the caller's deadline", func(t *testing.T) {
		// An hour of latency on the emulator's fake clock never passes:
		// only the caller's deadline can end the call.
		env := newEmu(t, all(ecsemu.Fault{Latency: time.Hour}))
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := env.p.DescribeRegions(dctx)
		if !errors.Is(err, context.DeadlineExceeded) || cloud.ClassOf(err) != cloud.ClassRetryable {
			t.Errorf("err = %v, want a retryable deadline", err)
		}
	})
	t.Run("one action only, changed at run time", func(t *testing.T) {
		env := newEmu(t, ecsemu.Config{Faults: map[string]ecsemu.Fault{"CopyImage": {InternalErrorRate: 1}}})
		_, err := env.p.CopyImage(ctx, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing"})
		wantError(t, "CopyImage with its fault", err, "InternalError", cloud.ClassRetryable, 500)
		if _, err := env.p.DescribeImages(ctx, cloud.ImageQuery{Region: "cn-hangzhou"}); err != nil {
			t.Errorf("DescribeImages has no fault: %v", err)
		}
		env.emu.SetFaults("CopyImage", ecsemu.Fault{})
		env.mustCopy(t, cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: srcA, DestinationRegion: "cn-beijing"})
	})
}

// BenchmarkDescribeImages measures one DescribeImages round trip (signing,
// HTTP on loopback, the emulator's work, JSON decoding, conversion) for a
// page of 100 images.
func BenchmarkDescribeImages(b *testing.B) {
	var fixtures []ecsemu.FixtureImage
	for i := range 100 {
		fixtures = append(fixtures, ecsemu.FixtureImage{Region: "cn-beijing", ID: fixtureID("2ze", i), Name: fmt.Sprintf("bench-%03d", i),
			SizeGiB: 40, Status: "Available", Tags: map[string]string{"replicatord/job": "j"}, CreationTime: emuStart})
	}
	emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{testKeyID: testSecret}, Images: fixtures, ThrottleRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()
	defer emu.Close()
	p, err := New(Config{Endpoint: srv.URL, Insecure: true, Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	q := cloud.ImageQuery{Region: "cn-beijing", Statuses: cloud.AllStatuses, OwnerAlias: "self"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ims, err := p.DescribeImages(context.Background(), q)
		if err != nil || len(ims) != 100 {
			b.Fatalf("%d images, %v", len(ims), err)
		}
	}
}
