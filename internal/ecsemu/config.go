package ecsemu

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
)

// Config holds every knob of the emulator. Zero values mean the documented
// default; for the limits, a negative value disables the limit.
type Config struct {
	// Credentials maps AccessKeyId to AccessKeySecret. At least one is required.
	Credentials map[string]string
	// Clock drives copy progress and, unless AuthClock is set, the request
	// Timestamp and nonce checks and the throttling buckets; nil = clock.Real{}.
	Clock clock.Clock
	// AuthClock is the clock request Timestamps, nonces and the throttling
	// buckets go by; nil = Clock. Clients sign with the wall clock, so a test that
	// drives copies with a fake Clock sets AuthClock to clock.Real{}.
	AuthClock clock.Clock
	// Seed makes copy failures, CancelNotSupported, faults and ids replayable.
	Seed int64
	// TimeScale divides every copy duration: 1 = real ECS speed (default),
	// 60 = sixty times faster.
	TimeScale float64
	// CopySlotsPerRegion is how many copies are Creating at once per
	// destination region (default 5, the current ECS limit); the rest wait.
	CopySlotsPerRegion int
	// DefaultRateMiBps is the throughput of one copy (default 50 MiB/s).
	DefaultRateMiBps float64
	// RouteRates overrides the throughput per route, keyed "src>dst".
	RouteRates map[string]float64
	// StartupDelay is the fixed start-up time of a copy before progress
	// (default 30s, scaled by TimeScale; negative = none).
	StartupDelay time.Duration
	// MaxImageSizeGiB refuses larger sources with SizeExceed.Image
	// (default 200; negative = no limit).
	MaxImageSizeGiB int64
	// ImageQuotaPerRegion refuses copies into a region holding this many
	// images with QuotaExceed.Image (default 500; negative = no limit).
	ImageQuotaPerRegion int
	// ComplianceRule is "" (no rule) or "mainland-only": copies only
	// between mainland-China regions (cn-* except cn-hongkong).
	ComplianceRule string
	// DeniedRoutes are "src>dst" pairs answering
	// OperationDenied.NonCompliantDestinationRegion, whatever ComplianceRule says.
	DeniedRoutes []string
	// CopyConflict answers OperationDenied.ImageCopyConflict when the
	// source image is already being copied.
	CopyConflict bool
	// CreateFailedRate is the share of copies that end CreateFailed. Which
	// ones is drawn from Seed, the source image, the destination and how
	// many copies of that source the destination was given before (the
	// attempt), so it does not depend on the order copies are sent in.
	CreateFailedRate float64
	// CancelNotSupportedRate is the share of CancelCopyImage calls on an
	// in-flight copy answering CancelNotSupported.
	CancelNotSupportedRate float64
	// ThrottleRate is the token bucket per action and access key, in
	// requests per 60 s (default 1000, like ECS; negative = no throttling).
	ThrottleRate float64
	// ThrottleBurst is the size of that bucket, in requests (0 = one
	// ThrottleRate's worth: ECS's bucket holds 1,000). A caller that
	// time-scales ThrottleRate sets it to keep ECS's real burst while the
	// bucket refills at the scaled rate.
	ThrottleBurst int
	// ThrottleCode is the error code of a throttled call (default
	// "Throttling.User"; "Throttling" is the other code ECS uses).
	ThrottleCode string
	// Faults are injected per action; "*" applies to every action that has
	// no entry of its own.
	Faults map[string]Fault
	// Images are the images present at start; nil = DemoImages().
	Images []FixtureImage
	// NoCatalog hides the catalogue (public images in every region, images
	// shared by another account, marketplace images): only the account's
	// own images exist then.
	NoCatalog bool
	// STS configures the emulated Security Token Service (see STSConfig).
	STS STSConfig
	// StateFile, if set, keeps the state (images, copies, ClientTokens,
	// STS sessions, queues) in this file: loaded by New when it exists
	// (then Images are not loaded), else created from Images; rewritten
	// atomically after every change, before the answer is sent.
	StateFile string
}

// Fault describes how an action misbehaves. The rates are shares of calls
// (0..1, summed at most 1): one seeded draw per call picks at most one of
// them. Latency is added to every call of the action.
type Fault struct {
	InternalErrorRate float64       `json:"internalErrorRate,omitempty" yaml:"internalErrorRate"`
	UnavailableRate   float64       `json:"unavailableRate,omitempty" yaml:"unavailableRate"`
	HangRate          float64       `json:"hangRate,omitempty" yaml:"hangRate"`
	DropRate          float64       `json:"dropRate,omitempty" yaml:"dropRate"`
	Latency           time.Duration `json:"latency,omitempty" yaml:"latency"`
}

// Validate reports the first bad field of f.
func (f Fault) Validate() error {
	sum := 0.0
	for _, r := range []struct {
		name string
		v    float64
	}{{"internalErrorRate", f.InternalErrorRate}, {"unavailableRate", f.UnavailableRate}, {"hangRate", f.HangRate}, {"dropRate", f.DropRate}} {
		if err := checkShare(r.name, r.v); err != nil {
			return err
		}
		sum += r.v
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("fault rates sum to %g, more than 1", sum)
	}
	if f.Latency < 0 {
		return fmt.Errorf("latency %s is negative", f.Latency)
	}
	return nil
}

func (f Fault) zero() bool { return f == Fault{} }

// FixtureImage is a custom image present when the emulator starts.
type FixtureImage struct {
	Region       string            `yaml:"region" json:"region"`
	ID           string            `yaml:"id" json:"id"`
	Name         string            `yaml:"name" json:"name"`
	SizeGiB      int64             `yaml:"sizeGiB" json:"sizeGiB"`
	Status       string            `yaml:"status" json:"status"`
	Tags         map[string]string `yaml:"tags" json:"tags,omitempty"`
	Family       string            `yaml:"family" json:"family,omitempty"`
	Description  string            `yaml:"description" json:"description,omitempty"`
	CreationTime time.Time         `yaml:"creationTime" json:"creationTime"`
}

// Defaults, exported so that tools can document them.
const (
	DefaultTimeScale           = 1.0
	DefaultCopySlotsPerRegion  = 5
	DefaultRateMiBps           = 50.0
	DefaultStartupDelay        = 30 * time.Second
	DefaultMaxImageSizeGiB     = 200
	DefaultImageQuotaPerRegion = 500
	DefaultThrottleRate        = 1000.0
	DefaultThrottleCode        = "Throttling.User"
	ComplianceMainlandOnly     = "mainland-only"
)

// withDefaults returns a copy of c with defaults filled in, or its
// problems, each naming the knob. Each group of knobs has its own
// function, checked in turn, so the problems keep their order.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	c.credentialDefaults(bad)
	c.copyDefaults(bad)
	c.limitDefaults(bad)
	c.faultDefaults(bad)
	if c.Images == nil {
		c.Images = DemoImages()
	} else if err := validateFixtures(c.Images); err != nil {
		bad("Images: %v", err)
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("ecsemu config: %w", errors.Join(errs...))
	}
	return c, nil
}

// problem records one problem of a Config, naming the knob.
type problem func(format string, args ...any)

// credentialDefaults checks the access keys (at least one) and copies them;
// the clock defaults to the real one.
func (c *Config) credentialDefaults(bad problem) {
	if len(c.Credentials) == 0 {
		bad("Credentials: at least one access key is required")
	}
	creds := make(map[string]string, len(c.Credentials))
	for id, secret := range c.Credentials {
		switch {
		case id == "" || strings.TrimSpace(id) != id:
			bad("Credentials: access key id %q is empty or has surrounding spaces", id)
		case secret == "":
			bad("Credentials: access key %q has an empty secret", id)
		}
		creds[id] = secret
	}
	c.Credentials = creds
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
}

// copyDefaults sets the pace of copies: time scale, slots, rates.
func (c *Config) copyDefaults(bad problem) {
	switch {
	case badFloat(c.TimeScale) || c.TimeScale < 0:
		bad("TimeScale: %g is not a positive number", c.TimeScale)
	case c.TimeScale == 0:
		c.TimeScale = DefaultTimeScale
	}
	switch {
	case c.CopySlotsPerRegion < 0:
		bad("CopySlotsPerRegion: %d is negative", c.CopySlotsPerRegion)
	case c.CopySlotsPerRegion == 0:
		c.CopySlotsPerRegion = DefaultCopySlotsPerRegion
	case c.CopySlotsPerRegion > 10000:
		bad("CopySlotsPerRegion: %d is more than 10000", c.CopySlotsPerRegion)
	}
	switch {
	case badFloat(c.DefaultRateMiBps) || c.DefaultRateMiBps < 0:
		bad("DefaultRateMiBps: %g is not a positive number", c.DefaultRateMiBps)
	case c.DefaultRateMiBps == 0:
		c.DefaultRateMiBps = DefaultRateMiBps
	}
	routes := make(map[string]float64, len(c.RouteRates))
	for route, rate := range c.RouteRates {
		if err := checkRoute(route); err != nil {
			bad("RouteRates: %v", err)
		}
		if badFloat(rate) || rate <= 0 {
			bad("RouteRates[%q]: %g is not a positive rate", route, rate)
		}
		routes[route] = rate
	}
	c.RouteRates = routes
}

// limitDefaults sets the start-up delay, the size and quota limits, the
// compliance rule and denied routes, and the random failure shares.
func (c *Config) limitDefaults(bad problem) {
	switch {
	case c.StartupDelay < 0:
		c.StartupDelay = 0
	case c.StartupDelay == 0:
		c.StartupDelay = DefaultStartupDelay
	}
	if c.MaxImageSizeGiB == 0 {
		c.MaxImageSizeGiB = DefaultMaxImageSizeGiB
	}
	if c.ImageQuotaPerRegion == 0 {
		c.ImageQuotaPerRegion = DefaultImageQuotaPerRegion
	}
	switch c.ComplianceRule {
	case "", ComplianceMainlandOnly:
	default:
		bad("ComplianceRule: %q is not one of \"\" or %q", c.ComplianceRule, ComplianceMainlandOnly)
	}
	c.DeniedRoutes = append([]string(nil), c.DeniedRoutes...)
	for _, route := range c.DeniedRoutes {
		if err := checkRoute(route); err != nil {
			bad("DeniedRoutes: %v", err)
		}
	}
	if err := checkShare("CreateFailedRate", c.CreateFailedRate); err != nil {
		bad("%v", err)
	}
	if err := checkShare("CancelNotSupportedRate", c.CancelNotSupportedRate); err != nil {
		bad("%v", err)
	}
}

// faultDefaults sets throttling, injected faults and STS.
func (c *Config) faultDefaults(bad problem) {
	switch {
	case math.IsNaN(c.ThrottleRate) || math.IsInf(c.ThrottleRate, 0):
		bad("ThrottleRate: %g is not a number of requests", c.ThrottleRate)
	case c.ThrottleRate == 0:
		c.ThrottleRate = DefaultThrottleRate
	}
	if c.ThrottleBurst < 0 {
		bad("ThrottleBurst: %d; want 0 (one ThrottleRate's worth) or more", c.ThrottleBurst)
	}
	if c.ThrottleCode == "" {
		c.ThrottleCode = DefaultThrottleCode
	} else if !validCode(c.ThrottleCode) {
		bad("ThrottleCode: %q is not an error code (letters, digits and dots)", c.ThrottleCode)
	}
	faults := make(map[string]Fault, len(c.Faults))
	for action, f := range c.Faults {
		if action != "*" && actions[action] == nil {
			bad("Faults: %q is not an emulated action or \"*\"", action)
		}
		if err := f.Validate(); err != nil {
			bad("Faults[%q]: %v", action, err)
		}
		faults[action] = f
	}
	c.Faults = faults
	if err := c.STS.validate(); err != nil {
		bad("STS: %v", err)
	}
}

func badFloat(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }

func checkShare(name string, v float64) error {
	if badFloat(v) || v < 0 || v > 1 {
		return fmt.Errorf("%s: %g is not a share between 0 and 1", name, v)
	}
	return nil
}

// checkRoute checks a "src>dst" key between two known regions.
func checkRoute(route string) error {
	src, dst, ok := strings.Cut(route, ">")
	if !ok {
		return fmt.Errorf("route %q is not of the form src>dst", route)
	}
	for _, r := range []string{src, dst} {
		if findRegion(r) == nil {
			return fmt.Errorf("route %q: unknown region %q", route, r)
		}
	}
	return nil
}

func validCode(code string) bool {
	if code == "" || len(code) > 64 {
		return false
	}
	for _, c := range code {
		if !(c == '.' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
