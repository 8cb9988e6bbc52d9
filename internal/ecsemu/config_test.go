package ecsemu_test

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

func TestNewValidatesEveryKnob(t *testing.T) {
	good := func() ecsemu.Config { return ecsemu.Config{Credentials: map[string]string{"id": "secret"}} }
	cases := []struct {
		knob string
		mod  func(*ecsemu.Config)
	}{
		{"Credentials", func(c *ecsemu.Config) { c.Credentials = nil }},
		{"Credentials", func(c *ecsemu.Config) { c.Credentials = map[string]string{"id": ""} }},
		{"Credentials", func(c *ecsemu.Config) { c.Credentials = map[string]string{" id": "s"} }},
		{"TimeScale", func(c *ecsemu.Config) { c.TimeScale = -1 }},
		{"TimeScale", func(c *ecsemu.Config) { c.TimeScale = math.NaN() }},
		{"CopySlotsPerRegion", func(c *ecsemu.Config) { c.CopySlotsPerRegion = -1 }},
		{"DefaultRateMiBps", func(c *ecsemu.Config) { c.DefaultRateMiBps = -5 }},
		{"RouteRates", func(c *ecsemu.Config) { c.RouteRates = map[string]float64{"cn-hangzhou": 10} }},
		{"RouteRates", func(c *ecsemu.Config) { c.RouteRates = map[string]float64{"cn-hangzhou>mars-1": 10} }},
		{"RouteRates", func(c *ecsemu.Config) { c.RouteRates = map[string]float64{"cn-hangzhou>cn-beijing": 0} }},
		{"ComplianceRule", func(c *ecsemu.Config) { c.ComplianceRule = "eu-only" }},
		{"DeniedRoutes", func(c *ecsemu.Config) { c.DeniedRoutes = []string{"cn-hangzhou"} }},
		{"CreateFailedRate", func(c *ecsemu.Config) { c.CreateFailedRate = 1.5 }},
		{"CancelNotSupportedRate", func(c *ecsemu.Config) { c.CancelNotSupportedRate = -0.1 }},
		{"ThrottleRate", func(c *ecsemu.Config) { c.ThrottleRate = math.Inf(1) }},
		{"ThrottleBurst", func(c *ecsemu.Config) { c.ThrottleBurst = -1 }},
		{"ThrottleCode", func(c *ecsemu.Config) { c.ThrottleCode = "slow down!" }},
		{"Faults", func(c *ecsemu.Config) { c.Faults = map[string]ecsemu.Fault{"RunInstances": {}} }},
		{"Faults", func(c *ecsemu.Config) { c.Faults = map[string]ecsemu.Fault{"*": {HangRate: 0.7, DropRate: 0.7}} }},
		{"Faults", func(c *ecsemu.Config) { c.Faults = map[string]ecsemu.Fault{"*": {Latency: -time.Second}} }},
		{"Images", func(c *ecsemu.Config) { c.Images = []ecsemu.FixtureImage{{Region: "cn-hangzhou", ID: "img-1"}} }},
	}
	for _, tc := range cases {
		cfg := good()
		tc.mod(&cfg)
		_, err := ecsemu.New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.knob) {
			t.Errorf("%s: error %v does not name the knob", tc.knob, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") && tc.knob != "Credentials" {
			t.Errorf("%s: error mentions the secret: %v", tc.knob, err)
		}
	}
	// Zero values are defaults; empty Images means no images.
	emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{"id": "s"}, Images: []ecsemu.FixtureImage{}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(emu.Stats().Images); n != 0 {
		t.Fatalf("empty Images gave %d regions of images", n)
	}
}

func TestDemoImages(t *testing.T) {
	imgs := ecsemu.DemoImages()
	if len(imgs) < 12 {
		t.Fatalf("%d demo images", len(imgs))
	}
	idRe := regexp.MustCompile(`^m-[0-9a-z]{20}$`)
	var huge, golden, elsewhere int
	for _, im := range imgs {
		if !idRe.MatchString(im.ID) {
			t.Errorf("id %q", im.ID)
		}
		switch {
		case im.SizeGiB > 200:
			huge++
		case im.SizeGiB < 20 || im.SizeGiB > 120:
			t.Errorf("%s: size %d outside 20–120", im.ID, im.SizeGiB)
		}
		if im.Tags["role"] == "golden" {
			golden++
		}
		if im.Region != "cn-hangzhou" {
			elsewhere++
		}
	}
	if huge != 1 || golden < 3 || elsewhere < 2 {
		t.Fatalf("demo set: %d huge, %d golden, %d outside cn-hangzhou", huge, golden, elsewhere)
	}
}

func TestLoadFixtures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := `images:
  - region: cn-shanghai
    id: m-uf6aaaaaaaaaaaaaaaaa
    name: base-image
    sizeGiB: 30
    status: Available
    creationTime: 2026-01-02T03:04:05Z
    tags: {team: a}
`
	imgs, err := ecsemu.LoadFixtures(write("good.yaml", good))
	if err != nil || len(imgs) != 1 || imgs[0].Tags["team"] != "a" || imgs[0].SizeGiB != 30 {
		t.Fatalf("LoadFixtures: %v %+v", err, imgs)
	}
	entry := func(kv string) string {
		return "images:\n  - {region: cn-shanghai, id: m-uf6aaaaaaaaaaaaaaaaa, name: base-image, sizeGiB: 30, status: Available, creationTime: 2026-01-02T03:04:05Z" + kv + "}\n"
	}
	bad := map[string]string{
		"empty":          "",
		"unknown field":  entry(", color: red"),
		"unknown region": strings.Replace(entry(""), "cn-shanghai", "cn-atlantis", 1),
		"bad id":         strings.Replace(entry(""), "m-uf6aaaaaaaaaaaaaaaaa", "m-1", 1),
		"bad status":     strings.Replace(entry(""), "Available", "Ready", 1),
		"zero size":      strings.Replace(entry(""), "sizeGiB: 30", "sizeGiB: 0", 1),
		"no time":        strings.Replace(entry(""), ", creationTime: 2026-01-02T03:04:05Z", "", 1),
		"bad name":       strings.Replace(entry(""), "base-image", "9lives", 1),
		"bad tag":        entry(", tags: {acs:x: y}"),
		"duplicate id":   entry("") + strings.TrimPrefix(strings.Replace(entry(""), "base-image", "other", 1), "images:\n"),
		"duplicate name": entry("") + strings.TrimPrefix(strings.Replace(entry(""), "aaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbb", 1), "images:\n"),
		"not YAML":       "images: [",
	}
	for name, body := range bad {
		if _, err := ecsemu.LoadFixtures(write(name+".yaml", body)); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), name+".yaml") {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
	if _, err := ecsemu.LoadFixtures(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file: no error")
	}
}
