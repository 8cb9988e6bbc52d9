package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"

	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/replicatord/replicatord/internal/job"
)

// Parse decodes and statically validates a policy file. path is used in
// messages and to resolve a relative data_dir; it may be "". On any problem
// it returns a *ValidationErrors holding every problem found, and no File.
func Parse(path string, data []byte) (*File, error) {
	f, err := parseWith(&decoder{file: path, budget: maxNodes}, path, data)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// parseLenient is Parse that also returns what it decoded when the file has
// problems (nil when the file could not be decoded at all).
func parseLenient(path string, data []byte) (*File, error) {
	return parseWith(&decoder{file: path, budget: maxNodes}, path, data)
}

// parseWith decodes data with d; with problems it returns what it decoded
// as well (see parseLenient).
func parseWith(d *decoder, path string, data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		d.errorf(nil, scope{}, "the file is larger than %d bytes; policy files are small, is this the right file?", MaxFileSize)
		return nil, d.errs.orNil()
	}
	if len(bytes.TrimSpace(data)) == 0 {
		d.errorf(nil, scope{}, "the file is empty; it needs at least \"version: 1\"")
		return nil, d.errs.orNil()
	}
	root, err := parseYAML(data)
	if err != nil {
		d.syntaxError(err)
		return nil, d.errs.orNil()
	}
	d.scanSecrets(root)
	doc := root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			d.errorf(doc, scope{}, "the file is empty; it needs at least \"version: 1\"")
			return nil, d.errs.orNil()
		}
		doc = doc.Content[0]
	}
	if doc.Kind == yaml.ScalarNode && doc.ShortTag() == "!!null" {
		d.errorf(doc, scope{}, "the file is empty; it needs at least \"version: 1\"")
		return nil, d.errs.orNil()
	}
	f := &File{Path: path}
	d.file_(doc, f)
	if err := d.errs.orNil(); err != nil {
		return f, err
	}
	if path != "" && f.Daemon.DataDir != "" && !filepath.IsAbs(f.Daemon.DataDir) {
		f.Daemon.DataDir = filepath.Join(filepath.Dir(path), f.Daemon.DataDir)
	}
	if path != "" {
		f.Store.resolvePaths(filepath.Dir(path))
	}
	return f, nil
}

// parseYAML parses one YAML document; a second one is an error, so that a
// stray "---" does not silently hide half of the file.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) { // only comments
			return &yaml.Node{Kind: yaml.DocumentNode, Line: 1, Column: 1}, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &secondDocument{line: extra.Line}
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	return &root, nil
}

type secondDocument struct{ line int }

func (e *secondDocument) Error() string { return "second document" }

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into a located problem.
func (d *decoder) syntaxError(err error) {
	var sd *secondDocument
	if errors.As(err, &sd) {
		line := sd.line
		if line < 1 {
			line = 1
		}
		d.errs.Errors = append(d.errs.Errors, ValidationError{File: d.file, Line: line, Column: 1,
			Message: "the file holds more than one YAML document (\"---\"); put everything in one"})
		return
	}
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		d.errs.Errors = append(d.errs.Errors, ValidationError{File: d.file, Line: line, Column: 1,
			Message: "YAML syntax error: " + m[2]})
		return
	}
	d.errs.Errors = append(d.errs.Errors, ValidationError{File: d.file,
		Message: "YAML syntax error: " + strings.TrimPrefix(msg, "yaml: ")})
}

// file_ decodes the top level.
func (d *decoder) file_(n *yaml.Node, f *File) {
	sc := scope{}
	f.Daemon = Daemon{DataDir: DefaultDataDir, LogFormat: "text", LogLevel: "info", Owner: job.DefaultOwner, JobRetention: DefaultJobRetention}
	f.Cloud = Cloud{Provider: ProviderSimulated, Simulated: defaultSimulated()}
	f.Store = defaultStore()
	f.Scheduler = Scheduler{
		CopySlotsPerRegion: DefaultCopySlotsPerRegion, Lookahead: DefaultLookahead, MaxAttempts: DefaultMaxAttempts, MaxRetries: DefaultMaxRetries,
		APIRatePerSecond: DefaultAPIRatePerSecond, PollMin: DefaultPollMin, PollMax: DefaultPollMax,
		LookaheadTime: DefaultLookaheadTime, DetectionLag: DefaultDetectionLag,
		RetryBase: DefaultRetryBase, QuotaWait: DefaultQuotaWait, CallTimeout: DefaultCallTimeout,
	}
	var cloudNode, simNode *yaml.Node
	var cloudSeen map[string]*yaml.Node
	seen := d.mapping(n, sc, fields{
		"version": func(_, v *yaml.Node, ks scope) {
			var ver int64
			if d.integer(v, ks, &ver) && ver != 1 {
				d.errorf(d.resolve(v), sc, "unsupported version %d (this replicatord reads 1)", ver)
			}
			f.Version = int(ver)
		},
		"daemon":    func(_, v *yaml.Node, ks scope) { d.daemon(v, ks, &f.Daemon) },
		"cloud":     func(_, v *yaml.Node, ks scope) { cloudNode = v; simNode, cloudSeen = d.cloud(v, ks, &f.Cloud) },
		"scheduler": func(_, v *yaml.Node, ks scope) { d.scheduler(v, ks, &f.Scheduler) },
		"store":     func(_, v *yaml.Node, ks scope) { d.store(v, ks, &f.Store) },
		"policies":  func(_, v *yaml.Node, ks scope) { f.Policies = d.policies(v, ks) },
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if _, ok := seen["version"]; !ok {
		d.errorf(n, sc, "version is missing; add \"version: 1\" at the top")
	}
	if f.Cloud.Provider == ProviderAliyun && simNode != nil {
		d.errorf(simNode, sc, "cloud.simulated is only for provider simulated")
	}
	if f.Cloud.Provider == ProviderSimulated && cloudNode != nil {
		for _, k := range aliyunOnlyKeys {
			if _, ok := cloudSeen[k]; ok {
				d.errorf(cloudNode, sc, "cloud.%s is only for provider aliyun (the simulated cloud runs in the daemon)", k)
			}
		}
	}
}

func (d *decoder) daemon(n *yaml.Node, sc scope, o *Daemon) {
	d.mapping(n, sc, fields{
		"data_dir": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.DataDir)
			if o.DataDir == "" {
				d.fieldErrorf(d.resolve(v), ks, "must not be empty (the default is %s)", DefaultDataDir)
				o.DataDir = DefaultDataDir
			}
		},
		"listen": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.Listen)
			if err := checkListen(o.Listen, true); err != nil {
				d.fieldErrorf(d.resolve(v), ks, "%v", err)
			}
		},
		"metrics_listen": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.MetricsListen)
			if err := checkListen(o.MetricsListen, false); err != nil {
				d.fieldErrorf(d.resolve(v), ks, "%v", err)
			}
		},
		"log_format": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.LogFormat)
			d.oneOf(v, ks, o.LogFormat, "text", "json")
		},
		"log_level": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.LogLevel)
			d.oneOf(v, ks, o.LogLevel, "debug", "info", "warn", "error")
		},
		"owner": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.Owner)
			if err := job.CheckOwner(o.Owner); err != nil {
				d.fieldErrorf(d.resolve(v), ks, "%v (it is the replicatord:owner tag value; the default is %s)", err, job.DefaultOwner)
				o.Owner = job.DefaultOwner
			}
		},
		"job_retention": func(_, v *yaml.Node, ks scope) {
			if d.days(v, ks, &o.JobRetention) && o.JobRetention != 0 && o.JobRetention < MinJobRetention {
				d.fieldErrorf(d.resolve(v), ks, "must be 0 (keep finished jobs forever) or at least %s, so that clients can read a job's result", MinJobRetention)
			}
		},
	})
}

// days decodes a duration that may also be written in whole days ("30d"),
// and must not be negative.
func (d *decoder) days(n *yaml.Node, sc scope, out *time.Duration) bool {
	if s := d.resolve(n); s != nil && s.Kind == yaml.ScalarNode && strings.HasSuffix(s.Value, "d") {
		k, err := strconv.ParseInt(strings.TrimSuffix(s.Value, "d"), 10, 32)
		if err != nil || k < 0 || k > 36500 {
			d.fieldErrorf(s, sc, "%s is not a number of days from 0 to 36500; write it like 30d, or as a duration like 720h", quote(s.Value))
			return false
		}
		*out = time.Duration(k) * 24 * time.Hour
		return true
	}
	if !d.duration(n, sc, out) {
		return false
	}
	if *out < 0 {
		d.fieldErrorf(d.resolve(n), sc, "must not be negative")
		return false
	}
	return true
}

// durationIn decodes a duration from lo to hi.
func (d *decoder) durationIn(out *time.Duration, lo, hi time.Duration) func(_, v *yaml.Node, ks scope) {
	return func(_, v *yaml.Node, ks scope) {
		if d.duration(v, ks, out) && (*out < lo || *out > hi) {
			d.fieldErrorf(d.resolve(v), ks, "%s is out of range (must be from %s to %s)", *out, lo, hi)
		}
	}
}

func (d *decoder) oneOf(n *yaml.Node, sc scope, got string, allowed ...string) bool {
	for _, a := range allowed {
		if got == a {
			return true
		}
	}
	d.fieldErrorf(d.resolve(n), sc, "%s is not one of %s", quote(got), strings.Join(allowed, ", "))
	return false
}

// checkListen accepts "" (only where a default exists), "unix:PATH" (for
// the API) and host:port.
func checkListen(s string, unixOK bool) error {
	if s == "" {
		return nil
	}
	if unixOK && strings.HasPrefix(s, "unix:") {
		if len(s) == len("unix:") {
			return errors.New("unix: needs a socket path")
		}
		return nil
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%s is not host:port", quote(s))
	}
	if p, err := net.LookupPort("tcp", port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%s has a bad port", quote(s))
	}
	return nil
}

// aliyunOnlyKeys are the cloud keys that mean nothing to the simulated cloud.
var aliyunOnlyKeys = []string{"endpoint", "endpoints", "network", "region", "connect_timeout", "read_timeout", "max_concurrency"}

// cloud decodes the cloud section; it returns the simulated node, if any,
// and the keys present.
func (d *decoder) cloud(n *yaml.Node, sc scope, o *Cloud) (*yaml.Node, map[string]*yaml.Node) {
	var sim *yaml.Node
	seen := d.mapping(n, sc, fields{
		"provider": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.Provider)
			if !d.oneOf(v, ks, o.Provider, ProviderSimulated, ProviderAliyun) {
				o.Provider = ""
			}
		},
		"endpoint": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.Endpoint)
			if err := checkEndpoint(o.Endpoint); err != nil {
				d.fieldErrorf(d.resolve(v), ks, "%v", err)
			}
		},
		"endpoints": func(_, v *yaml.Node, ks scope) {
			v = d.resolve(v)
			if v == nil {
				return
			}
			if v.Kind != yaml.MappingNode {
				d.fieldErrorf(v, ks, "expected a mapping of region to endpoint, got %s", kindName(v))
				return
			}
			o.Endpoints = map[string]string{}
			for _, p := range d.pairs(v, sc, 0) {
				if !regionRE.MatchString(p.name) {
					d.errorf(p.key, sc, "cloud.endpoints: %s is not a region id (like cn-shanghai)", quote(p.name))
					continue
				}
				if _, dup := o.Endpoints[p.name]; dup {
					d.errorf(p.key, sc, "cloud.endpoints: region %s is repeated", p.name)
					continue
				}
				var ep string
				d.str(p.val, ks.at(p.name), &ep)
				if err := checkEndpoint(ep); err != nil || ep == "" {
					if err == nil {
						err = errors.New("must not be empty")
					}
					d.fieldErrorf(d.resolve(p.val), ks.at(p.name), "%v", err)
					continue
				}
				o.Endpoints[p.name] = ep
			}
		},
		"network": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.Network)
			d.oneOf(v, ks, o.Network, NetworkPublic, NetworkVPC)
		},
		"region": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.Region)
			if !regionRE.MatchString(o.Region) {
				d.fieldErrorf(d.resolve(v), ks, "%s is not a region id (like cn-shanghai)", quote(o.Region))
			}
		},
		"connect_timeout": d.positiveDuration(&o.ConnectTimeout, false),
		"read_timeout":    d.positiveDuration(&o.ReadTimeout, false),
		"max_concurrency": func(_, v *yaml.Node, ks scope) {
			var x int64
			if d.intIn(v, ks, 1, 256, &x) {
				o.MaxConcurrency = int(x)
			}
		},
		"simulated": func(_, v *yaml.Node, ks scope) { sim = v; d.simulated(v, ks, &o.Simulated) },
	})
	if sim == nil {
		o.Simulated = defaultSimulated()
	}
	if o.Network == NetworkVPC && o.Region == "" {
		d.errorf(d.resolve(n), sc, "cloud.network vpc needs cloud.region: the region this daemon runs in (a VPC endpoint serves only callers in its own region)")
	}
	return sim, seen
}

// positive decodes a number that must be above 0; hint ends the message.
func (d *decoder) positive(out *float64, hint string) func(_, v *yaml.Node, ks scope) {
	return func(_, v *yaml.Node, ks scope) {
		if d.number(v, ks, out) && *out <= 0 {
			d.fieldErrorf(d.resolve(v), ks, "must be above 0%s", hint)
		}
	}
}

// positiveDuration decodes a duration that must be above 0, or with zeroOK
// at least 0.
func (d *decoder) positiveDuration(out *time.Duration, zeroOK bool) func(_, v *yaml.Node, ks scope) {
	return func(_, v *yaml.Node, ks scope) {
		switch {
		case !d.duration(v, ks, out):
		case zeroOK && *out < 0:
			d.fieldErrorf(d.resolve(v), ks, "must not be negative")
		case !zeroOK && *out <= 0:
			d.fieldErrorf(d.resolve(v), ks, "must be above 0")
		}
	}
}

func defaultSimulated() Simulated {
	return Simulated{TimeScale: 60, CopyRateMiBps: 50, StartupDelay: 30e9, Seed: 1, MaxImageSizeGiB: 200}
}

func checkEndpoint(s string) error {
	if s == "" {
		return nil
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s is not an http(s) URL or a host[:port]", quote(s))
		}
		if u.User != nil {
			return errors.New("the endpoint must not hold credentials")
		}
		return nil
	}
	if strings.ContainsAny(s, "/ @") {
		return fmt.Errorf("%s is not an http(s) URL or a host[:port]", quote(s))
	}
	return nil
}

func (d *decoder) simulated(n *yaml.Node, sc scope, o *Simulated) {
	*o = defaultSimulated()
	d.mapping(n, sc, fields{
		"time_scale":      d.positive(&o.TimeScale, " (1 = real ECS speed)"),
		"copy_rate_mibps": d.positive(&o.CopyRateMiBps, ""),
		"startup_delay":   d.positiveDuration(&o.StartupDelay, true),
		"seed":            func(_, v *yaml.Node, ks scope) { d.integer(v, ks, &o.Seed) },
		"max_image_size_gib": func(_, v *yaml.Node, ks scope) {
			d.intIn(v, ks, 1, math.MaxInt32, &o.MaxImageSizeGiB)
		},
		"compliance_rule": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.ComplianceRule)
			d.oneOf(v, ks, o.ComplianceRule, "", RuleMainlandOnly)
		},
		"denied_routes": func(_, v *yaml.Node, ks scope) {
			var nodes []*yaml.Node
			o.DeniedRoutes, nodes = d.strList(v, ks)
			for i, r := range o.DeniedRoutes {
				src, dst, ok := strings.Cut(r, ">")
				if !ok || !regionRE.MatchString(src) || !regionRE.MatchString(dst) {
					d.fieldErrorf(nodes[i], ks.index(i), "%s is not a route; write it as source>destination, e.g. cn-hangzhou>ap-southeast-1", quote(r))
				}
			}
		},
	})
}

func (d *decoder) scheduler(n *yaml.Node, sc scope, o *Scheduler) {
	var pollMaxNode *yaml.Node
	intField := func(lo int64, out *int) func(_, v *yaml.Node, ks scope) {
		return func(_, v *yaml.Node, ks scope) {
			var x int64
			if d.intIn(v, ks, lo, math.MaxInt32, &x) {
				*out = int(x)
			}
		}
	}
	d.mapping(n, sc, fields{
		"copy_slots_per_region": intField(1, &o.CopySlotsPerRegion),
		"lookahead":             intField(0, &o.Lookahead),
		"max_attempts":          intField(1, &o.MaxAttempts),
		"max_retries":           intField(1, &o.MaxRetries),
		"region_slots": func(_, v *yaml.Node, ks scope) {
			v = d.resolve(v)
			if v == nil {
				return
			}
			if v.Kind != yaml.MappingNode {
				d.fieldErrorf(v, ks, "expected a mapping of region to slots, got %s", kindName(v))
				return
			}
			o.RegionSlots = map[string]int{}
			for _, p := range d.pairs(v, sc, 0) {
				if !regionRE.MatchString(p.name) {
					d.errorf(p.key, sc, "%s: %s is not a region id (like cn-shanghai)", ks.path, quote(p.name))
					continue
				}
				if _, dup := o.RegionSlots[p.name]; dup {
					d.errorf(p.key, sc, "%s: region %s is repeated", ks.path, p.name)
					continue
				}
				var x int64
				if d.intIn(p.val, ks.at(p.name), 1, math.MaxInt32, &x) {
					o.RegionSlots[p.name] = int(x)
				}
			}
		},
		"api_rate_per_second": d.positive(&o.APIRatePerSecond, ""),
		"poll_min":            d.positiveDuration(&o.PollMin, false),
		"lookahead_time":      d.positiveDuration(&o.LookaheadTime, false),
		"detection_lag":       d.positiveDuration(&o.DetectionLag, false),
		"poll_max": func(k, v *yaml.Node, ks scope) {
			pollMaxNode = d.resolve(v)
			d.positiveDuration(&o.PollMax, false)(k, v, ks)
		},
		"copy_conflict": func(_, v *yaml.Node, ks scope) { d.boolean(v, ks, &o.CopyConflict) },
		"retry_base":    d.durationIn(&o.RetryBase, 10*time.Millisecond, MaxRetryBase),
		"quota_wait":    d.durationIn(&o.QuotaWait, time.Second, MaxQuotaWait),
		"call_timeout":  d.durationIn(&o.CallTimeout, MinCallTimeout, MaxCallTimeout),
	})
	if o.PollMin > 0 && o.PollMax > 0 && o.PollMax < o.PollMin {
		at := pollMaxNode
		if at == nil {
			at = d.resolve(n)
		}
		d.errorf(at, sc, "scheduler.poll_max (%s) is below poll_min (%s)", o.PollMax, o.PollMin)
	}
}

// MaxPolicies caps the policies of one file: each runs its own reconcile
// loop with DescribeImages calls in all its regions.
const MaxPolicies = 1000

// policies decodes the list of policies and checks that names are unique.
func (d *decoder) policies(n *yaml.Node, sc scope) []Policy {
	n = d.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fieldErrorf(n, sc, "expected a list of policies, got %s", kindName(n))
		return nil
	}
	if len(n.Content) > MaxPolicies {
		d.fieldErrorf(n, sc, "%d policies is more than the %d one file may hold", len(n.Content), MaxPolicies)
		return nil
	}
	var out []Policy
	names := map[string]int{}
	for i, c := range n.Content {
		if d.broke {
			break
		}
		p, nameNode := d.policy(c, sc.index(i))
		if p.Name != "" {
			if line, dup := names[p.Name]; dup {
				d.errorf(nameNode, scope{policy: p.Name}, "the name is already used by the policy at line %d; policy names must be unique", line)
			} else {
				names[p.Name] = nameNode.Line
			}
		}
		out = append(out, p)
	}
	return out
}
