package ecsemu_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

// secs turns fractional seconds into a Duration.
func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// copyDuration is the default duration of a copy of size GiB: 30 s start-up
// plus size at 50 MiB/s.
func copyDuration(sizeGiB int) time.Duration { return secs(30 + float64(sizeGiB)*1024/50) }

func TestCopyQueueWaitingCreatingAvailable(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	// Six copies into one region at once: five slots, the sixth waits for
	// the first slot to free, which is the 20 GiB copy's.
	srcs := []string{demoUbuntu, demoAlinux, demoWindows, demoUbuntu, demoUbuntu, demoAlinux}
	sizes := []int{40, 20, 120, 40, 40, 20}
	ids := make([]string, len(srcs))
	for i, src := range srcs {
		ids[i] = c.copyImage("cn-hangzhou", src, "cn-beijing")
		if !strings.HasPrefix(ids[i], "m-2ze") || len(ids[i]) != 22 {
			t.Fatalf("copy id %q does not look like a Beijing image id", ids[i])
		}
	}
	want := func(at time.Duration, statuses ...string) {
		t.Helper()
		r.clk.Set(t0.Add(at))
		for i, id := range ids {
			if got := c.statusOf("cn-beijing", id); got != statuses[i] {
				t.Fatalf("at +%v copy %d (%d GiB): status %q, want %q", at, i, sizes[i], got, statuses[i])
			}
		}
	}
	want(0, "Creating", "Creating", "Creating", "Creating", "Creating", "Waiting")
	stats := r.emu.Stats()
	if got := stats.Copies["cn-beijing"]; got["Creating"] != 5 || got["Waiting"] != 1 {
		t.Fatalf("Stats.Copies[cn-beijing] = %v", got)
	}

	// A waiting copy shows 0% and an estimate of the time to its end.
	w := c.describe("cn-beijing", ids[5])
	if w["Progress"] != "0%" || !w["IsCopied"].(bool) {
		t.Fatalf("waiting copy: %v", w)
	}

	small := copyDuration(20) // 439.6 s
	want(small-time.Millisecond, "Creating", "Creating", "Creating", "Creating", "Creating", "Waiting")
	want(small, "Creating", "Available", "Creating", "Creating", "Creating", "Creating")

	// Half of the 40 GiB transfer is done when the 20 GiB copy ends.
	im := c.describe("cn-beijing", ids[0])
	ddm := im["DiskDeviceMappings"].(map[string]any)["DiskDeviceMapping"].([]any)[0].(map[string]any)
	if im["Progress"] != "50%" || ddm["Progress"] != "50%" || ddm["RemainTime"].(float64) != 410 {
		t.Fatalf("progress at +%v: image %v, disk %v", small, im["Progress"], ddm)
	}
	if ddm["Size"] != "40" || im["Size"].(float64) != 40 {
		t.Fatalf("sizes: image %v, disk %v (want int 40 and string \"40\")", im["Size"], ddm["Size"])
	}
	if sid := ddm["SnapshotId"].(string); !strings.HasPrefix(sid, "s-2ze") {
		t.Fatalf("copy snapshot id %q is not a new Beijing snapshot", sid)
	}

	want(copyDuration(40), "Available", "Available", "Creating", "Available", "Available", "Creating")
	want(small+small, "Available", "Available", "Creating", "Available", "Available", "Available")
	want(copyDuration(120), "Available", "Available", "Available", "Available", "Available", "Available")
	if im := c.describe("cn-beijing", ids[2]); im["Progress"] != "100%" {
		t.Fatalf("available copy progress %v", im["Progress"])
	}
	// Default Status filter: only Available images, and all six are.
	list := images(c.ok("DescribeImages", "RegionId", "cn-beijing", "PageSize", "100", "ImageOwnerAlias", "self"))
	if len(list) != 6 {
		t.Fatalf("DescribeImages cn-beijing lists %d images, want 6", len(list))
	}
}

func TestCopyImageAttributes(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	id := c.copyImage("cn-hangzhou", demoUbuntu, "cn-shanghai",
		"DestinationImageName", "golden-copy", "DestinationDescription", "a copy",
		"Tag.1.Key", "replicator", "Tag.1.Value", "v1", "Tag.2.Key", "src", "Tag.2.Value", demoUbuntu,
		"ResourceGroupId", "rg-acfm2abc123", "Encrypted", "true", "KMSKeyId", "0b9f5d32-1f46-4d6a-8a6f-2d8e9a9d1c11")
	im := c.describe("cn-shanghai", id)
	if im["ImageName"] != "golden-copy" || im["Description"] != "a copy" || im["ResourceGroupId"] != "rg-acfm2abc123" {
		t.Fatalf("copy attributes: %v", im)
	}
	if im["ImageFamily"] != "" {
		t.Fatalf("copies do not inherit the family, got %v", im["ImageFamily"])
	}
	tags := im["Tags"].(map[string]any)["Tag"].([]any)
	if len(tags) != 2 || tags[0].(map[string]any)["TagKey"] != "replicator" || tags[1].(map[string]any)["TagValue"] != demoUbuntu {
		t.Fatalf("tags on the copy: %v", tags)
	}
	ddm := im["DiskDeviceMappings"].(map[string]any)["DiskDeviceMapping"].([]any)[0].(map[string]any)
	if ddm["Encrypted"] != true {
		t.Fatalf("encrypted copy disk: %v", ddm)
	}

	// Without a name the copy takes the source's, and a second copy of the
	// same source gets a generated, still valid, unique one.
	a := c.copyImage("cn-hangzhou", demoAlinux, "cn-shanghai")
	b := c.copyImage("cn-hangzhou", demoAlinux, "cn-shanghai")
	na, nb := c.describe("cn-shanghai", a)["ImageName"].(string), c.describe("cn-shanghai", b)["ImageName"].(string)
	if na != "golden-alinux3-20261104" || nb == na || !strings.HasPrefix(nb, na+"-copy-") {
		t.Fatalf("generated names %q, %q", na, nb)
	}
	c.ok("ModifyImageAttribute", "RegionId", "cn-shanghai", "ImageId", a, "ImageName", "renamed") // nb must still be a valid name:
	c.ok("ModifyImageAttribute", "RegionId", "cn-shanghai", "ImageId", b, "ImageName", nb)
}

func TestCopyImageErrors(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.DeniedRoutes = []string{"cn-hangzhou>eu-central-1"}
	})
	c := r.c
	base := func(kv ...string) []string {
		return append([]string{"RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "DestinationRegionId", "cn-beijing"}, kv...)
	}
	without := func(key string) []string {
		var out []string
		b := base()
		for i := 0; i < len(b); i += 2 {
			if b[i] != key {
				out = append(out, b[i], b[i+1])
			}
		}
		return out
	}
	set := func(key, value string) []string {
		return append(without(key), key, value)
	}
	cases := []struct {
		name   string
		args   []string
		status int
		code   string
	}{
		{"no RegionId", without("RegionId"), 400, "MissingParameter"},
		{"no ImageId", without("ImageId"), 400, "MissingParameter"},
		{"no DestinationRegionId", without("DestinationRegionId"), 400, "MissingParameter"},
		{"unknown source region", set("RegionId", "cn-atlantis"), 400, "SourceRegion.NotFound"},
		{"unknown destination", set("DestinationRegionId", "mars-1"), 400, "DestinationRegion.NotFound"},
		{"unknown image", set("ImageId", "m-bp1000000000000000000"), 404, "InvalidImageId.NotFound"},
		{"image of another region", set("ImageId", "m-t4n3k5j7h9g1f2d4s6a8"), 404, "InvalidImageId.NotFound"},
		{"source still Creating", set("ImageId", demoBuilding), 400, "IncorrectImageStatus"},
		{"source Deprecated", set("ImageId", "m-bp1v5b3n1m9k7j5h3g1f"), 400, "IncorrectImageStatus"},
		{"same region", set("DestinationRegionId", "cn-hangzhou"), 403, "IncorrectDestinationRegion"},
		{"larger than 200 GiB", set("ImageId", demoHuge), 403, "SizeExceed.Image"},
		{"denied route", set("DestinationRegionId", "eu-central-1"), 403, "OperationDenied.NonCompliantDestinationRegion"},
		{"name too short", base("DestinationImageName", "a"), 400, "InvalidImageName.Malformed"},
		{"name too long", base("DestinationImageName", "a"+strings.Repeat("b", 128)), 400, "InvalidImageName.Malformed"},
		{"name starts with a digit", base("DestinationImageName", "1golden"), 400, "InvalidImageName.Malformed"},
		{"name starts with acs:", base("DestinationImageName", "acs:golden"), 400, "InvalidImageName.Malformed"},
		{"name starts with aliyun", base("DestinationImageName", "aliyun-golden"), 400, "InvalidImageName.Malformed"},
		{"name contains http://", base("DestinationImageName", "golden-http://x"), 400, "InvalidImageName.Malformed"},
		{"name with a space", base("DestinationImageName", "golden image"), 400, "InvalidImageName.Malformed"},
		{"description too short", base("DestinationDescription", "x"), 400, "InvalidDescription.Malformed"},
		{"description starts with https://", base("DestinationDescription", "https://example.com"), 400, "InvalidDescription.Malformed"},
		{"description too long", base("DestinationDescription", strings.Repeat("d", 257)), 400, "InvalidDescription.Malformed"},
		{"Encrypted not a bool", base("Encrypted", "maybe"), 400, "InvalidParameter"},
		{"KMSKeyId without Encrypted", base("KMSKeyId", "key-1"), 400, "InvalidEncrypted.NotMatchKmsKeyId"},
		{"EncryptAlgorithm", base("Encrypted", "true", "EncryptAlgorithm", "sm4"), 400, "InvalidEncryptAlgorithm"},
		{"bad resource group", base("ResourceGroupId", "default"), 404, "InvalidResourceGroup.NotFound"},
		{"21 tags", base("Tag.21.Key", "k"), 400, "InvalidTagCount"},
		{"tag key aliyun", base("Tag.1.Key", "aliyun:owner", "Tag.1.Value", "x"), 400, "InvalidTagKey.Malformed"},
		{"tag value without key", base("Tag.1.Value", "x"), 400, "InvalidTagKey.Malformed"},
		{"tag value too long", base("Tag.1.Key", "k", "Tag.1.Value", strings.Repeat("v", 129)), 400, "InvalidTagValue.Malformed"},
		{"bad tag index", base("Tag.x.Key", "k"), 400, "InvalidParameter"},
		{"ClientToken too long", base("ClientToken", strings.Repeat("t", 65)), 400, "InvalidParameter"},
		{"ClientToken not ASCII", base("ClientToken", "tök"), 400, "InvalidParameter"},
		{"DryRun not a bool", base("DryRun", "yes"), 400, "InvalidParameter"},
		{"DryRun that would succeed", base("DryRun", "true"), 400, "DryRunOperation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.fails(tc.status, tc.code, "CopyImage", tc.args...)
		})
	}
	// None of them created anything.
	if n := r.emu.Stats().CopiesSubmitted["cn-beijing"]; n != 0 {
		t.Fatalf("failed calls submitted %d copies", n)
	}

	t.Run("same region is allowed for an encrypted copy", func(t *testing.T) {
		c.copyImage("cn-hangzhou", demoAlinux, "cn-hangzhou", "Encrypted", "true")
	})
	t.Run("name taken in the destination", func(t *testing.T) {
		c.copyImage("cn-hangzhou", demoUbuntu, "cn-qingdao", "DestinationImageName", "taken")
		c.fails(400, "InvalidImageName.Duplicated", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "DestinationRegionId", "cn-qingdao", "DestinationImageName", "taken")
		// Another region is fine.
		c.copyImage("cn-hangzhou", demoAlinux, "cn-chengdu", "DestinationImageName", "taken")
	})
}

func TestCopyQuotaComplianceConflict(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.ImageQuotaPerRegion = 2
		cfg.ComplianceRule = ecsemu.ComplianceMainlandOnly
		cfg.CopyConflict = true
		cfg.MaxImageSizeGiB = 100
	})
	c := r.c
	c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing")
	// The same source is still being copied.
	c.fails(400, "OperationDenied.ImageCopyConflict", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "DestinationRegionId", "cn-shenzhen")
	c.copyImage("cn-hangzhou", demoAlinux, "cn-beijing")
	c.fails(403, "QuotaExceed.Image", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", "m-bp1a8xw2m1k5lq0rvt7e", "DestinationRegionId", "cn-beijing")
	for _, dst := range []string{"cn-hongkong", "ap-southeast-1", "eu-central-1"} {
		c.fails(403, "OperationDenied.NonCompliantDestinationRegion", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", "m-bp1a8xw2m1k5lq0rvt7e", "DestinationRegionId", dst)
	}
	c.fails(403, "SizeExceed.Image", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoWindows, "DestinationRegionId", "cn-shanghai")
	// Once the first copy is done, its source can be copied again.
	r.clk.Step(copyDuration(40))
	c.copyImage("cn-hangzhou", demoUbuntu, "cn-shenzhen")
}

func TestCopyTimeScaleRouteRateAndFailures(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.TimeScale = 60
		cfg.RouteRates = map[string]float64{"cn-hangzhou>cn-shanghai": 100}
		cfg.StartupDelay = -1 // none
	})
	c := r.c
	fast := c.copyImage("cn-hangzhou", demoUbuntu, "cn-shanghai") // 40 GiB at 100 MiB/s: 409.6 s / 60
	slow := c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing")  // 40 GiB at 50 MiB/s: 819.2 s / 60
	r.clk.Set(t0.Add(secs(409.6/60) - time.Millisecond))
	if c.statusOf("cn-shanghai", fast) != "Creating" {
		t.Fatal("fast copy ended early")
	}
	r.clk.Set(t0.Add(secs(409.6 / 60)))
	if s1, s2 := c.statusOf("cn-shanghai", fast), c.statusOf("cn-beijing", slow); s1 != "Available" || s2 != "Creating" {
		t.Fatalf("at the fast copy's end: %s %s", s1, s2)
	}
	r.clk.Set(t0.Add(secs(819.2 / 60)))
	if c.statusOf("cn-beijing", slow) != "Available" {
		t.Fatal("slow copy not Available at its end")
	}

	// Every copy fails with CreateFailedRate 1, after a share of its time,
	// keeps its progress and holds no snapshot storage.
	f := newRig(t, func(cfg *ecsemu.Config) { cfg.CreateFailedRate = 1 })
	id := f.c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing")
	f.clk.Step(copyDuration(40))
	im := f.c.describe("cn-beijing", id)
	if im["Status"] != "CreateFailed" || im["Progress"] == "100%" {
		t.Fatalf("failing copy: %v %v", im["Status"], im["Progress"])
	}
	if gib := f.emu.Stats().CopiedSnapshotGiB["cn-beijing"]; gib != 0 {
		t.Fatalf("failed copy holds %d GiB of snapshots", gib)
	}
	f.c.fails(400, "IncorrectImageStatus", "CancelCopyImage", "RegionId", "cn-beijing", "ImageId", id)
	// A failed copy can be deleted, and frees its name.
	f.c.ok("DeleteImage", "RegionId", "cn-beijing", "ImageId", id)
}

func TestCreateFailedShareIsSeeded(t *testing.T) {
	outcomes := func(seed int64) string {
		r := newRig(t, func(cfg *ecsemu.Config) {
			cfg.Seed = seed
			cfg.CreateFailedRate = 0.5
			cfg.CopySlotsPerRegion = 20
		})
		var ids []string
		for i := 0; i < 12; i++ {
			ids = append(ids, r.c.copyImage("cn-hangzhou", demoAlinux, "cn-beijing"))
		}
		r.clk.Step(copyDuration(20))
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(r.c.statusOf("cn-beijing", id)[:1])
		}
		return b.String()
	}
	a, b := outcomes(42), outcomes(42)
	if a != b {
		t.Fatalf("same seed, different outcomes: %s %s", a, b)
	}
	if !strings.Contains(a, "A") || !strings.Contains(a, "C") {
		t.Fatalf("a 50%% failure share gave %s", a)
	}
	if other := outcomes(43); other == a {
		t.Logf("seeds 42 and 43 happen to agree: %s", a)
	}
}

// Which copies fail depends on the seed, the source, the destination and
// the attempt, not on the order the copies are sent in: two clients that
// send the same copies in opposite orders face the same failures, and a
// second copy of a source into a region draws its own fate.
func TestCreateFailedFateIgnoresOrder(t *testing.T) {
	type copyOf struct{ src, dst string }
	var plan []copyOf
	for _, dst := range []string{"cn-beijing", "cn-shanghai", "cn-shenzhen", "ap-southeast-1"} {
		for _, src := range []string{demoUbuntu, demoAlinux, demoWindows} {
			plan = append(plan, copyOf{src, dst}, copyOf{src, dst}) // two attempts each
		}
	}
	outcomes := func(reverse bool) map[copyOf]string {
		r := newRig(t, func(cfg *ecsemu.Config) {
			cfg.CreateFailedRate = 0.5
			cfg.CopySlotsPerRegion = 20
		})
		order := slices.Clone(plan)
		if reverse {
			slices.Reverse(order)
		}
		ids := map[copyOf][]string{}
		for _, c := range order {
			ids[c] = append(ids[c], r.c.copyImage("cn-hangzhou", c.src, c.dst))
		}
		r.clk.Step(copyDuration(120))
		out := map[copyOf]string{}
		for c, list := range ids {
			for _, id := range list { // the pair's copies in the order sent: attempt 0, 1
				out[c] += r.c.statusOf(c.dst, id)[:1]
			}
		}
		return out
	}
	forward, backward := outcomes(false), outcomes(true)
	failed := 0
	for c, f := range forward {
		if b := backward[c]; f != b {
			t.Errorf("%s into %s: %s sent in one order, %s in the other", c.src, c.dst, f, b)
		}
		failed += strings.Count(f, "C")
	}
	if failed == 0 || failed == 2*len(forward) {
		t.Fatalf("a 50%% failure share failed %d of %d copies", failed, 2*len(forward))
	}
}

// CopyFailures names exactly the copies that end CreateFailed, with the
// share of their duration at which they fail, and keeps them after the
// failed image is deleted (a benchmark replays ECS's queue from it).
func TestCopyFailuresNameTheFailedCopies(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) {
		cfg.Seed = 7
		cfg.CreateFailedRate = 0.5
		cfg.CopySlotsPerRegion = 20
	})
	var ids []string
	for i := 0; i < 12; i++ {
		ids = append(ids, r.c.copyImage("cn-hangzhou", demoAlinux, "cn-beijing"))
	}
	r.clk.Step(copyDuration(20))
	fails := r.emu.CopyFailures()
	for _, id := range ids {
		share, listed := fails[id]
		failed := r.c.statusOf("cn-beijing", id) == "CreateFailed"
		if listed != failed {
			t.Fatalf("copy %s: CreateFailed %v, listed in CopyFailures %v", id, failed, listed)
		}
		if listed && (share < 0.1 || share > 0.9) {
			t.Fatalf("copy %s fails at share %g, want 0.1..0.9", id, share)
		}
	}
	if len(fails) == 0 || len(fails) == len(ids) {
		t.Fatalf("a 50%% failure share failed %d of %d copies", len(fails), len(ids))
	}
	for id := range fails {
		r.c.ok("DeleteImage", "RegionId", "cn-beijing", "ImageId", id)
	}
	if got := len(r.emu.CopyFailures()); got != len(fails) {
		t.Fatalf("after deleting the failed images CopyFailures lists %d, want %d", got, len(fails))
	}
}

func TestClientTokenIdempotency(t *testing.T) {
	r := newRig(t, nil)
	c := r.c
	args := []string{"RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "DestinationRegionId", "cn-beijing", "DestinationImageName", "tok-copy", "ClientToken", "job-1"}
	id := c.ok("CopyImage", args...)["ImageId"]
	// A retry, signed anew, is the same copy, and does not trip over the
	// name the copy now holds.
	if again := c.ok("CopyImage", args...)["ImageId"]; again != id {
		t.Fatalf("retry gave %v, first %v", again, id)
	}
	if n := r.emu.Stats().CopiesSubmitted["cn-beijing"]; n != 1 {
		t.Fatalf("two calls with one token submitted %d copies", n)
	}
	// Still the same once the copy is Available.
	r.clk.Step(copyDuration(40))
	if again := c.ok("CopyImage", args...)["ImageId"]; again != id {
		t.Fatalf("retry after Available gave %v", again)
	}
	// The same token with another parameter is refused.
	c.fails(400, "IdempotentParameterMismatch", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "DestinationRegionId", "cn-beijing", "DestinationImageName", "other-name", "ClientToken", "job-1")

	// After the copy is cancelled, the token starts a new copy.
	args2 := []string{"RegionId", "cn-hangzhou", "ImageId", demoAlinux, "DestinationRegionId", "cn-shanghai", "ClientToken", "job-2"}
	first := c.ok("CopyImage", args2...)["ImageId"].(string)
	c.ok("CancelCopyImage", "RegionId", "cn-shanghai", "ImageId", first)
	second := c.ok("CopyImage", args2...)["ImageId"].(string)
	if second == first {
		t.Fatal("a cancelled copy's token returned the cancelled id")
	}
}

func TestCancelAndDelete(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) { cfg.CopySlotsPerRegion = 1 })
	c := r.c
	a := c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing")
	b := c.copyImage("cn-hangzhou", demoAlinux, "cn-beijing")
	w := c.copyImage("cn-hangzhou", demoAlinux, "cn-beijing")
	if s := []string{c.statusOf("cn-beijing", a), c.statusOf("cn-beijing", b), c.statusOf("cn-beijing", w)}; fmt.Sprint(s) != "[Creating Waiting Waiting]" {
		t.Fatalf("one slot: %v", s)
	}
	gibBefore := r.emu.Stats().SnapshotGiB["cn-beijing"]

	// DeleteImage refuses an in-flight copy.
	c.fails(403, "OperationDenied.ImageCopying", "DeleteImage", "RegionId", "cn-beijing", "ImageId", a)
	c.fails(403, "OperationDenied.ImageCopying", "DeleteImage", "RegionId", "cn-beijing", "ImageId", w)

	// Cancel the waiting one: it never takes the slot.
	r.clk.Step(100 * time.Second)
	c.ok("CancelCopyImage", "RegionId", "cn-beijing", "ImageId", w)
	if c.statusOf("cn-beijing", w) != "" {
		t.Fatal("cancelled copy still listed")
	}
	// Cancel the Creating one: its slot frees now, the next starts now.
	c.ok("CancelCopyImage", "RegionId", "cn-beijing", "ImageId", a)
	if c.statusOf("cn-beijing", a) != "" || c.statusOf("cn-beijing", b) != "Creating" {
		t.Fatalf("after cancel: a=%q b=%q", c.statusOf("cn-beijing", a), c.statusOf("cn-beijing", b))
	}
	r.clk.Step(copyDuration(20) - time.Millisecond)
	if c.statusOf("cn-beijing", b) != "Creating" {
		t.Fatal("b ended before its full duration from the cancel")
	}
	r.clk.Step(time.Millisecond)
	if c.statusOf("cn-beijing", b) != "Available" {
		t.Fatal("b not Available a full duration after the cancel")
	}
	st := r.emu.Stats()
	if st.CopiesCancelled["cn-beijing"] != 2 || st.SnapshotGiB["cn-beijing"] != gibBefore-40-20 {
		t.Fatalf("stats after cancels: cancelled %v, snapshot GiB %d (before %d)", st.CopiesCancelled, st.SnapshotGiB["cn-beijing"], gibBefore)
	}

	c.fails(400, "IncorrectImageStatus", "CancelCopyImage", "RegionId", "cn-beijing", "ImageId", b)
	c.fails(400, "ImageCreatedNotFromCopy", "CancelCopyImage", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu)
	c.fails(404, "InvalidImageId.NotFound", "CancelCopyImage", "RegionId", "cn-beijing", "ImageId", a)
	c.fails(404, "InvalidImageId.NotFound", "CancelCopyImage", "RegionId", "cn-hangzhou", "ImageId", b) // RegionId is the destination
	c.fails(404, "InvalidRegionId.NotFound", "CancelCopyImage", "RegionId", "nowhere-1", "ImageId", b)
	c.fails(400, "MissingParameter", "CancelCopyImage", "RegionId", "cn-beijing")

	// DeleteImage: an unknown id is ignored; an Available copy goes with
	// its snapshots.
	c.ok("DeleteImage", "RegionId", "cn-beijing", "ImageId", "m-2ze00000000000000000")
	c.ok("DeleteImage", "RegionId", "cn-beijing", "ImageId", b, "Force", "true")
	if c.statusOf("cn-beijing", b) != "" || r.emu.Stats().SnapshotGiB["cn-beijing"] != 0 {
		t.Fatal("deleted copy or its snapshots remain")
	}
	c.fails(400, "InvalidParameter", "DeleteImage", "RegionId", "cn-beijing", "ImageId", b, "Force", "always")
}

func TestCancelNotSupported(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) { cfg.CancelNotSupportedRate = 1 })
	id := r.c.copyImage("cn-hangzhou", demoUbuntu, "cn-beijing")
	r.c.fails(http.StatusBadRequest, "CancelNotSupported", "CancelCopyImage", "RegionId", "cn-beijing", "ImageId", id)
	if r.c.statusOf("cn-beijing", id) != "Creating" {
		t.Fatal("a refused cancel changed the copy")
	}
}
