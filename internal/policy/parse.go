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
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse decodes and statically validates a policy file. path is used in
// messages and to resolve a relative data_dir; it may be "". On any problem
// it returns a *ValidationErrors holding every problem found, and no File.
func Parse(path string, data []byte) (*File, error) {
	d := &decoder{file: path, budget: maxNodes}
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
		return nil, err
	}
	if path != "" && f.Daemon.DataDir != "" && !filepath.IsAbs(f.Daemon.DataDir) {
		f.Daemon.DataDir = filepath.Join(filepath.Dir(path), f.Daemon.DataDir)
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
	f.Daemon = Daemon{DataDir: DefaultDataDir, LogFormat: "text", LogLevel: "info"}
	f.Cloud = Cloud{Provider: ProviderSimulated, Simulated: defaultSimulated()}
	f.Scheduler = Scheduler{
		CopySlotsPerRegion: DefaultCopySlotsPerRegion, Lookahead: DefaultLookahead, MaxAttempts: DefaultMaxAttempts,
		APIRatePerSecond: DefaultAPIRatePerSecond, PollMin: DefaultPollMin, PollMax: DefaultPollMax,
	}
	var cloudNode, simNode *yaml.Node
	seen := d.mapping(n, sc, fields{
		"version": func(_, v *yaml.Node) {
			var ver int64
			if d.integer(v, sc.at("version"), &ver) && ver != 1 {
				d.errorf(d.resolve(v), sc, "unsupported version %d (this replicatord reads 1)", ver)
			}
			f.Version = int(ver)
		},
		"daemon":    func(_, v *yaml.Node) { d.daemon(v, sc.at("daemon"), &f.Daemon) },
		"cloud":     func(_, v *yaml.Node) { cloudNode = v; simNode = d.cloud(v, sc.at("cloud"), &f.Cloud) },
		"scheduler": func(_, v *yaml.Node) { d.scheduler(v, sc.at("scheduler"), &f.Scheduler) },
		"policies":  func(_, v *yaml.Node) { f.Policies = d.policies(v, sc.at("policies")) },
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
	if f.Cloud.Provider == ProviderSimulated && f.Cloud.Endpoint != "" && cloudNode != nil {
		d.errorf(cloudNode, sc, "cloud.endpoint is only for provider aliyun (the simulated cloud runs in the daemon)")
	}
}

func (d *decoder) daemon(n *yaml.Node, sc scope, o *Daemon) {
	d.mapping(n, sc, fields{
		"data_dir": func(_, v *yaml.Node) {
			d.str(v, sc.at("data_dir"), &o.DataDir)
			if o.DataDir == "" {
				d.fieldErrorf(d.resolve(v), sc.at("data_dir"), "must not be empty (the default is %s)", DefaultDataDir)
				o.DataDir = DefaultDataDir
			}
		},
		"listen": func(_, v *yaml.Node) {
			d.str(v, sc.at("listen"), &o.Listen)
			if err := checkListen(o.Listen, true); err != nil {
				d.fieldErrorf(d.resolve(v), sc.at("listen"), "%v", err)
			}
		},
		"metrics_listen": func(_, v *yaml.Node) {
			d.str(v, sc.at("metrics_listen"), &o.MetricsListen)
			if err := checkListen(o.MetricsListen, false); err != nil {
				d.fieldErrorf(d.resolve(v), sc.at("metrics_listen"), "%v", err)
			}
		},
		"log_format": func(_, v *yaml.Node) {
			d.str(v, sc.at("log_format"), &o.LogFormat)
			d.oneOf(v, sc.at("log_format"), o.LogFormat, "text", "json")
		},
		"log_level": func(_, v *yaml.Node) {
			d.str(v, sc.at("log_level"), &o.LogLevel)
			d.oneOf(v, sc.at("log_level"), o.LogLevel, "debug", "info", "warn", "error")
		},
	})
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

// cloud decodes the cloud section; it returns the simulated node, if any.
func (d *decoder) cloud(n *yaml.Node, sc scope, o *Cloud) *yaml.Node {
	var sim *yaml.Node
	d.mapping(n, sc, fields{
		"provider": func(_, v *yaml.Node) {
			d.str(v, sc.at("provider"), &o.Provider)
			if !d.oneOf(v, sc.at("provider"), o.Provider, ProviderSimulated, ProviderAliyun) {
				o.Provider = ""
			}
		},
		"endpoint": func(_, v *yaml.Node) {
			d.str(v, sc.at("endpoint"), &o.Endpoint)
			if err := checkEndpoint(o.Endpoint); err != nil {
				d.fieldErrorf(d.resolve(v), sc.at("endpoint"), "%v", err)
			}
		},
		"simulated": func(_, v *yaml.Node) { sim = v; d.simulated(v, sc.at("simulated"), &o.Simulated) },
	})
	if sim == nil {
		o.Simulated = defaultSimulated()
	}
	return sim
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
		"time_scale": func(_, v *yaml.Node) {
			if d.number(v, sc.at("time_scale"), &o.TimeScale) && o.TimeScale <= 0 {
				d.fieldErrorf(d.resolve(v), sc.at("time_scale"), "must be above 0 (1 = real ECS speed)")
			}
		},
		"copy_rate_mibps": func(_, v *yaml.Node) {
			if d.number(v, sc.at("copy_rate_mibps"), &o.CopyRateMiBps) && o.CopyRateMiBps <= 0 {
				d.fieldErrorf(d.resolve(v), sc.at("copy_rate_mibps"), "must be above 0")
			}
		},
		"startup_delay": func(_, v *yaml.Node) {
			if d.duration(v, sc.at("startup_delay"), &o.StartupDelay) && o.StartupDelay < 0 {
				d.fieldErrorf(d.resolve(v), sc.at("startup_delay"), "must not be negative")
			}
		},
		"seed": func(_, v *yaml.Node) { d.integer(v, sc.at("seed"), &o.Seed) },
		"max_image_size_gib": func(_, v *yaml.Node) {
			d.intIn(v, sc.at("max_image_size_gib"), 1, math.MaxInt32, &o.MaxImageSizeGiB)
		},
		"compliance_rule": func(_, v *yaml.Node) {
			d.str(v, sc.at("compliance_rule"), &o.ComplianceRule)
			d.oneOf(v, sc.at("compliance_rule"), o.ComplianceRule, "", RuleMainlandOnly)
		},
		"denied_routes": func(_, v *yaml.Node) {
			var nodes []*yaml.Node
			o.DeniedRoutes, nodes = d.strList(v, sc.at("denied_routes"))
			for i, r := range o.DeniedRoutes {
				src, dst, ok := strings.Cut(r, ">")
				if !ok || !regionRE.MatchString(src) || !regionRE.MatchString(dst) {
					d.fieldErrorf(nodes[i], sc.at("denied_routes").index(i), "%s is not a route; write it as source>destination, e.g. cn-hangzhou>ap-southeast-1", quote(r))
				}
			}
		},
	})
}

func (d *decoder) scheduler(n *yaml.Node, sc scope, o *Scheduler) {
	var pollMaxNode *yaml.Node
	intField := func(name string, lo int64, out *int) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			var x int64
			if d.intIn(v, sc.at(name), lo, math.MaxInt32, &x) {
				*out = int(x)
			}
		}
	}
	d.mapping(n, sc, fields{
		"copy_slots_per_region": intField("copy_slots_per_region", 1, &o.CopySlotsPerRegion),
		"lookahead":             intField("lookahead", 0, &o.Lookahead),
		"max_attempts":          intField("max_attempts", 1, &o.MaxAttempts),
		"region_slots": func(_, v *yaml.Node) {
			v = d.resolve(v)
			if v == nil {
				return
			}
			if v.Kind != yaml.MappingNode {
				d.fieldErrorf(v, sc.at("region_slots"), "expected a mapping of region to slots, got %s", kindName(v))
				return
			}
			o.RegionSlots = map[string]int{}
			for _, p := range d.pairs(v, sc, 0) {
				if !regionRE.MatchString(p.name) {
					d.errorf(p.key, sc, "scheduler.region_slots: %s is not a region id (like cn-shanghai)", quote(p.name))
					continue
				}
				if _, dup := o.RegionSlots[p.name]; dup {
					d.errorf(p.key, sc, "scheduler.region_slots: region %s is repeated", p.name)
					continue
				}
				var x int64
				if d.intIn(p.val, sc.at("region_slots").at(p.name), 1, math.MaxInt32, &x) {
					o.RegionSlots[p.name] = int(x)
				}
			}
		},
		"api_rate_per_second": func(_, v *yaml.Node) {
			if d.number(v, sc.at("api_rate_per_second"), &o.APIRatePerSecond) && o.APIRatePerSecond <= 0 {
				d.fieldErrorf(d.resolve(v), sc.at("api_rate_per_second"), "must be above 0")
			}
		},
		"poll_min": func(_, v *yaml.Node) {
			if d.duration(v, sc.at("poll_min"), &o.PollMin) && o.PollMin <= 0 {
				d.fieldErrorf(d.resolve(v), sc.at("poll_min"), "must be above 0")
			}
		},
		"poll_max": func(_, v *yaml.Node) {
			pollMaxNode = d.resolve(v)
			if d.duration(v, sc.at("poll_max"), &o.PollMax) && o.PollMax <= 0 {
				d.fieldErrorf(pollMaxNode, sc.at("poll_max"), "must be above 0")
			}
		},
		"copy_conflict": func(_, v *yaml.Node) { d.boolean(v, sc.at("copy_conflict"), &o.CopyConflict) },
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
