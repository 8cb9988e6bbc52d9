package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

const defaultListen = "127.0.0.1:8086"

// fileConfig is the YAML layout of --config: the same knobs as the flags.
type fileConfig struct {
	Listen                 string                  `yaml:"listen"`
	AccessKeyID            string                  `yaml:"accessKeyId"`
	AccessKeySecret        string                  `yaml:"accessKeySecret"`
	Credentials            map[string]string       `yaml:"credentials"`
	Fixture                string                  `yaml:"fixture"`
	Seed                   int64                   `yaml:"seed"`
	TimeScale              float64                 `yaml:"timeScale"`
	CopySlotsPerRegion     int                     `yaml:"copySlotsPerRegion"`
	DefaultRateMiBps       float64                 `yaml:"defaultRateMiBps"`
	RouteRates             map[string]float64      `yaml:"routeRates"`
	StartupDelay           time.Duration           `yaml:"startupDelay"`
	MaxImageSizeGiB        int64                   `yaml:"maxImageSizeGiB"`
	ImageQuotaPerRegion    int                     `yaml:"imageQuotaPerRegion"`
	ComplianceRule         string                  `yaml:"complianceRule"`
	DeniedRoutes           []string                `yaml:"deniedRoutes"`
	CopyConflict           bool                    `yaml:"copyConflict"`
	CreateFailedRate       float64                 `yaml:"createFailedRate"`
	CancelNotSupportedRate float64                 `yaml:"cancelNotSupportedRate"`
	ThrottleRate           float64                 `yaml:"throttleRate"`
	ThrottleBurst          int                     `yaml:"throttleBurst"`
	ThrottleCode           string                  `yaml:"throttleCode"`
	Faults                 map[string]ecsemu.Fault `yaml:"faults"`
	TLSCert                string                  `yaml:"tlsCert"`
	TLSKey                 string                  `yaml:"tlsKey"`
	StateFile              string                  `yaml:"stateFile"`
	STS                    ecsemu.STSConfig        `yaml:"sts"`
	Catalog                *bool                   `yaml:"catalog"`
}

// options are the parsed command line.
type options struct {
	listen          string
	tlsCert, tlsKey string // serve HTTPS when both are set
	stateFile       string
	cfg             ecsemu.Config
	source          string // where the images came from
}

func (o options) summary() string {
	ids := make([]string, 0, len(o.cfg.Credentials))
	for id := range o.cfg.Credentials {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	scale := o.cfg.TimeScale
	if scale == 0 {
		scale = ecsemu.DefaultTimeScale
	}
	return fmt.Sprintf("%d images (%s), access keys %s, seed %d, time scale %g, admin API under /_ecsemu/",
		len(o.cfg.Images), o.source, strings.Join(ids, ","), o.cfg.Seed, scale)
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

const usageHeader = `ecsemu: an emulator of the Alibaba Cloud ECS image API (2014-05-26), for tests.

Usage: ecsemu [flags]

Serves CopyImage, DescribeImages, CancelCopyImage, DeleteImage, DescribeRegions,
TagResources, UntagResources, ListTagResources, ModifyImageAttribute,
ModifyImageSharePermission and DescribeImageSharePermission on POST/GET /, with
signature v1.0 checked against the configured access keys. Prints
"ecsemu listening on http://ADDR" once it listens; stops on SIGINT/SIGTERM.

Credentials: --access-key-id/--access-key-secret, else the environment
(ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET), else the
config file. Prefer the environment: flags are visible in ps.

Admin API (no signature): GET /_ecsemu/stats, GET|PUT|DELETE /_ecsemu/faults,
GET|PUT /_ecsemu/config, POST /_ecsemu/reset[?state=true], GET /_ecsemu/images.

Config file (--config, YAML; flags given on the command line win): the keys
listen, accessKeyId, accessKeySecret, credentials {id: secret}, fixture, seed,
timeScale, copySlotsPerRegion, defaultRateMiBps, routeRates {"src>dst": MiBps},
startupDelay, maxImageSizeGiB, imageQuotaPerRegion, complianceRule,
deniedRoutes [src>dst], copyConflict, createFailedRate, cancelNotSupportedRate,
throttleRate, throttleBurst, throttleCode, faults {Action: {internalErrorRate, unavailableRate,
hangRate, dropRate, latency}}, tlsCert, tlsKey, stateFile, catalog, sts {accountId,
tokenLifetime, oidcProviderArn, oidcIssuer, oidcAudience}.

STS (API 2015-04-01: AssumeRole, AssumeRoleWithOIDC, GetCallerIdentity) is
served on the same address; requests are told apart by Version. The Go SDK
calls STS over HTTPS only: give --tls-cert/--tls-key and make the client trust
the certificate (SSL_CERT_FILE).

Flags:
`

// parseOptions reads flags, the config file and the environment.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("ecsemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHeader)
		fs.PrintDefaults()
	}
	var (
		listen        = fs.String("listen", defaultListen, "`address` to listen on; port 0 picks a free port")
		configPath    = fs.String("config", "", "YAML `file` with the same knobs as the flags")
		fixture       = fs.String("fixture", "", "YAML `file` of images to start with (default: the embedded demo set)")
		keyID         = fs.String("access-key-id", "", "AccessKeyId accepted (or ALIBABA_CLOUD_ACCESS_KEY_ID)")
		keySecret     = fs.String("access-key-secret", "", "AccessKeySecret of that key (or ALIBABA_CLOUD_ACCESS_KEY_SECRET)")
		seed          = fs.Int64("seed", 0, "seed of copy failures, CancelNotSupported, faults and ids: the same seed replays a run")
		timeScale     = fs.Float64("time-scale", ecsemu.DefaultTimeScale, "divides copy durations: 1 = real ECS speed, 60 = sixty times faster")
		slots         = fs.Int("copy-slots", ecsemu.DefaultCopySlotsPerRegion, "copies Creating at once per destination region; the rest are Waiting")
		rate          = fs.Float64("rate", ecsemu.DefaultRateMiBps, "copy throughput per copy, in MiB/s")
		startup       = fs.Duration("startup-delay", ecsemu.DefaultStartupDelay, "fixed start-up time of a copy before progress (scaled; negative = none)")
		maxSize       = fs.Int64("max-image-size-gib", ecsemu.DefaultMaxImageSizeGiB, "larger sources answer SizeExceed.Image (negative = no limit)")
		quota         = fs.Int("image-quota", ecsemu.DefaultImageQuotaPerRegion, "images per region before QuotaExceed.Image (negative = no limit)")
		compliance    = fs.String("compliance-rule", "", `"" or "mainland-only": copies only between mainland-China regions, else OperationDenied.NonCompliantDestinationRegion`)
		conflict      = fs.Bool("copy-conflict", false, "answer OperationDenied.ImageCopyConflict when the source image is already being copied")
		failRate      = fs.Float64("create-failed-rate", 0, "share of copies (0..1) that end CreateFailed")
		cancelRate    = fs.Float64("cancel-not-supported-rate", 0, "share of CancelCopyImage calls (0..1) answering CancelNotSupported")
		throttleRate  = fs.Float64("throttle-rate", ecsemu.DefaultThrottleRate, "token bucket per action and access key, requests per 60 s (negative = off)")
		throttleBurst = fs.Int("throttle-burst", 0, "size of that bucket, requests (0 = one --throttle-rate's worth, as ECS: with a time scale, keep ECS's 1000 while the rate is scaled)")
		throttleCode  = fs.String("throttle-code", ecsemu.DefaultThrottleCode, `error code of a throttled call: "Throttling.User" or "Throttling"`)
		catalog       = fs.Bool("catalog", true, "serve the catalogue: public images in every region, images shared by another account, marketplace images (false = only the account's own)")
		tlsCert       = fs.String("tls-cert", "", "serve HTTPS with this certificate `file` (PEM; needs --tls-key)")
		tlsKey        = fs.String("tls-key", "", "private key `file` (PEM) of --tls-cert")
		stateFile     = fs.String("state-file", "", "keep images, copies and STS sessions in this `file`: loaded at start, written after every change")
		stsLifetime   = fs.Duration("sts-token-lifetime", 0, "lifetime of STS credentials (default: the request's DurationSeconds); the Go SDK renews 180 s before expiry")
		stsAccount    = fs.String("sts-account-id", "", "account owning the roles (default: the images' account)")
		oidcProvider  = fs.String("sts-oidc-provider-arn", "", "the only OIDC provider ARN AssumeRoleWithOIDC accepts (default: any of the account)")
		oidcIssuer    = fs.String("sts-oidc-issuer", "", "iss an OIDC token must carry (default: not checked)")
		oidcAudience  = fs.String("sts-oidc-audience", "", "aud an OIDC token must include (default: not checked)")
		routeRates    listFlag
		denied        listFlag
		faults        listFlag
	)
	fs.Var(&routeRates, "route-rate", "copy throughput of one route, as `src>dst=MiBps` (repeatable)")
	fs.Var(&denied, "deny-route", "a route answering OperationDenied.NonCompliantDestinationRegion, as `src>dst` (repeatable)")
	fs.Var(&faults, "fault", "an injected fault, as `Action:key=value,...`; Action may be * (repeatable). Keys: internalErrorRate, unavailableRate, hangRate, dropRate (shares 0..1), latency (e.g. 200ms)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q; every knob is a flag", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var fc fileConfig
	if *configPath != "" {
		var err error
		if fc, err = readConfigFile(*configPath); err != nil {
			return options{}, err
		}
	}
	// Start from the file, then let explicit flags win.
	o := options{listen: defaultListen}
	cfg := ecsemu.Config{
		Seed: fc.Seed, TimeScale: fc.TimeScale, CopySlotsPerRegion: fc.CopySlotsPerRegion,
		DefaultRateMiBps: fc.DefaultRateMiBps, RouteRates: fc.RouteRates, StartupDelay: fc.StartupDelay,
		MaxImageSizeGiB: fc.MaxImageSizeGiB, ImageQuotaPerRegion: fc.ImageQuotaPerRegion,
		ComplianceRule: fc.ComplianceRule, DeniedRoutes: fc.DeniedRoutes, CopyConflict: fc.CopyConflict,
		CreateFailedRate: fc.CreateFailedRate, CancelNotSupportedRate: fc.CancelNotSupportedRate,
		ThrottleRate: fc.ThrottleRate, ThrottleBurst: fc.ThrottleBurst, ThrottleCode: fc.ThrottleCode, Faults: fc.Faults,
		STS: fc.STS,
	}
	o.tlsCert, o.tlsKey, o.stateFile = fc.TLSCert, fc.TLSKey, fc.StateFile
	if given["tls-cert"] {
		o.tlsCert = *tlsCert
	}
	if given["tls-key"] {
		o.tlsKey = *tlsKey
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return options{}, errors.New("--tls-cert and --tls-key go together")
	}
	if fc.Catalog != nil {
		cfg.NoCatalog = !*fc.Catalog
	}
	if given["catalog"] {
		cfg.NoCatalog = !*catalog
	}
	if given["state-file"] {
		o.stateFile = *stateFile
	}
	if given["sts-token-lifetime"] {
		cfg.STS.TokenLifetime = *stsLifetime
	}
	if given["sts-account-id"] {
		cfg.STS.AccountID = *stsAccount
	}
	if given["sts-oidc-provider-arn"] {
		cfg.STS.OIDCProviderARN = *oidcProvider
	}
	if given["sts-oidc-issuer"] {
		cfg.STS.OIDCIssuer = *oidcIssuer
	}
	if given["sts-oidc-audience"] {
		cfg.STS.OIDCAudience = *oidcAudience
	}
	if fc.Listen != "" {
		o.listen = fc.Listen
	}
	if given["listen"] {
		o.listen = *listen
	}
	if given["seed"] {
		cfg.Seed = *seed
	}
	if given["time-scale"] {
		cfg.TimeScale = *timeScale
	}
	if given["copy-slots"] {
		cfg.CopySlotsPerRegion = *slots
	}
	if given["rate"] {
		cfg.DefaultRateMiBps = *rate
	}
	if given["startup-delay"] {
		cfg.StartupDelay = *startup
		if *startup == 0 {
			cfg.StartupDelay = -1 // an explicit 0 means none, not the default
		}
	}
	if given["max-image-size-gib"] {
		cfg.MaxImageSizeGiB = *maxSize
	}
	if given["image-quota"] {
		cfg.ImageQuotaPerRegion = *quota
	}
	if given["compliance-rule"] {
		cfg.ComplianceRule = *compliance
	}
	if given["copy-conflict"] {
		cfg.CopyConflict = *conflict
	}
	if given["create-failed-rate"] {
		cfg.CreateFailedRate = *failRate
	}
	if given["cancel-not-supported-rate"] {
		cfg.CancelNotSupportedRate = *cancelRate
	}
	if given["throttle-rate"] {
		cfg.ThrottleRate = *throttleRate
	}
	if given["throttle-burst"] {
		cfg.ThrottleBurst = *throttleBurst
	}
	if cfg.ThrottleBurst < 0 {
		return options{}, fmt.Errorf("--throttle-burst (or throttleBurst) %d: want 0 (one --throttle-rate's worth) or a number of requests", cfg.ThrottleBurst)
	}
	if given["throttle-code"] {
		cfg.ThrottleCode = *throttleCode
	}
	if len(routeRates) > 0 {
		rr := map[string]float64{}
		for k, v := range cfg.RouteRates {
			rr[k] = v
		}
		for _, s := range routeRates {
			route, val, ok := strings.Cut(s, "=")
			r, err := strconv.ParseFloat(val, 64)
			if !ok || err != nil {
				return options{}, fmt.Errorf("--route-rate %q: want src>dst=MiBps", s)
			}
			rr[route] = r
		}
		cfg.RouteRates = rr
	}
	cfg.DeniedRoutes = append(cfg.DeniedRoutes, denied...)
	if len(faults) > 0 {
		fm := map[string]ecsemu.Fault{}
		for k, v := range cfg.Faults {
			fm[k] = v
		}
		for _, s := range faults {
			action, f, err := parseFault(s)
			if err != nil {
				return options{}, err
			}
			fm[action] = f
		}
		cfg.Faults = fm
	}

	// Credentials: flags, then the environment, then the file.
	cfg.Credentials = map[string]string{}
	for id, secret := range fc.Credentials {
		cfg.Credentials[id] = secret
	}
	id, secret := fc.AccessKeyID, fc.AccessKeySecret
	if e := getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"); e != "" {
		id, secret = e, getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
	}
	if given["access-key-id"] || given["access-key-secret"] {
		id, secret = *keyID, *keySecret
	}
	if id != "" || secret != "" {
		if id == "" || secret == "" {
			return options{}, errors.New("an access key needs both an id and a secret (--access-key-id and --access-key-secret, or ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET)")
		}
		cfg.Credentials[id] = secret
	}
	if len(cfg.Credentials) == 0 {
		return options{}, errors.New("no access key: give --access-key-id and --access-key-secret, set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or put credentials in --config")
	}

	fixturePath := fc.Fixture
	if given["fixture"] {
		fixturePath = *fixture
	}
	o.source = "embedded demo set"
	if fixturePath != "" {
		imgs, err := ecsemu.LoadFixtures(fixturePath)
		if err != nil {
			return options{}, err
		}
		cfg.Images, o.source = imgs, fixturePath
	} else {
		cfg.Images = ecsemu.DemoImages()
	}
	cfg.StateFile = o.stateFile
	if o.stateFile != "" {
		o.source += "; state file " + o.stateFile + " wins when it exists"
	}
	o.cfg = cfg
	return o, nil
}

func readConfigFile(path string) (fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fileConfig{}, fmt.Errorf("config file %s: %v", path, err)
	}
	return fc, nil
}

// parseFault reads "Action:key=value,key=value".
func parseFault(s string) (string, ecsemu.Fault, error) {
	bad := func(format string, args ...any) (string, ecsemu.Fault, error) {
		return "", ecsemu.Fault{}, fmt.Errorf("--fault %q: %s", s, fmt.Sprintf(format, args...))
	}
	action, spec, ok := strings.Cut(s, ":")
	if !ok || action == "" {
		return bad("want Action:key=value,... (Action may be *)")
	}
	var f ecsemu.Fault
	for _, kv := range strings.Split(spec, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return bad("%q is not key=value", kv)
		}
		if k == "latency" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return bad("latency %q is not a duration such as 200ms", v)
			}
			f.Latency = d
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return bad("%s=%q is not a number", k, v)
		}
		switch k {
		case "internalErrorRate":
			f.InternalErrorRate = x
		case "unavailableRate":
			f.UnavailableRate = x
		case "hangRate":
			f.HangRate = x
		case "dropRate":
			f.DropRate = x
		default:
			return bad("unknown key %q; use internalErrorRate, unavailableRate, hangRate, dropRate, latency", k)
		}
	}
	if err := f.Validate(); err != nil {
		return bad("%v", err)
	}
	return action, f, nil
}
