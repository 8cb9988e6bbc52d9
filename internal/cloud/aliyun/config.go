package aliyun

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultReadTimeout    = 15 * time.Second
	DefaultMaxConcurrency = 8
	// DefaultRegion is the region asked for the region list (DescribeRegions
	// is served by every region).
	DefaultRegion = "cn-hangzhou"
)

// Networks: which of ECS's documented endpoints a region's calls go to
// ("Elastic Compute Service: Endpoints" in the ECS API reference).
const (
	// NetworkPublic: ecs.<region>.aliyuncs.com, reachable from anywhere
	// with Internet egress.
	NetworkPublic = "public"
	// NetworkVPC: ecs-vpc.<region>.aliyuncs.com, reachable only from a VPC
	// in that same region (Alibaba Cloud: cross-region calls over a VPC
	// endpoint are not supported).
	NetworkVPC = "vpc"
)

// Config configures a Provider.
type Config struct {
	// Endpoint is host[:port] or an http(s) URL with no path, used for every
	// region that Endpoints does not name. Empty means ECS's own regional
	// endpoints on Network. A host without a scheme is HTTPS.
	Endpoint string
	// Endpoints overrides the endpoint of single regions (region id ->
	// host[:port] or URL, as Endpoint).
	Endpoints map[string]string
	// Network picks ECS's public (default) or VPC endpoints for the regions
	// that neither Endpoint nor Endpoints covers.
	Network string
	// Region is the region whose endpoint answers DescribeRegions
	// (DefaultRegion if empty). With Network vpc it must be the region the
	// caller runs in.
	Region string
	// Insecure allows endpoints written as http:// URLs (plain HTTP: the
	// AccessKeyId and the signed request travel in clear). Without it such
	// an endpoint is refused; a host without a scheme is always HTTPS.
	Insecure bool
	// RootCAs, if set, replaces the system roots for verifying endpoints'
	// certificates (a private CA in front of ECS, or a test server).
	RootCAs *x509.CertPool
	// Credentials are static keys; the zero value uses the SDK's default
	// chain (see Credentials).
	Credentials Credentials
	// AssumeRole, if set, signs with a RAM role's temporary credentials
	// instead (see AssumeRole in sts.go).
	AssumeRole *AssumeRole
	// ConnectTimeout bounds dialing; ReadTimeout bounds a whole call. They
	// are set on every client and every request, so the SDK's per-API table
	// and its "sticky" timeouts never apply.
	ConnectTimeout, ReadTimeout time.Duration
	// MaxConcurrency is the number of SDK clients in the pool, hence of calls
	// in flight; an SDK client is not safe for concurrent use.
	MaxConcurrency int
	// UserAgent is appended to the SDK's User-Agent.
	UserAgent string
	// dial replaces the dialer (tests only, see export_test.go).
	dial dialFunc
	// Observer, if set, is called after every API call (each page of a
	// DescribeImages, each chunk of a split TagImages or ShareImage) from the
	// calling goroutine. It must not block.
	Observer func(Call)
}

// Call describes one finished API call, for metrics and logs. It carries no
// credentials.
type Call struct {
	Action, Region, Code, RequestID string
	HTTPStatus                      int
	Duration                        time.Duration
	// Err is nil on success; otherwise a *cloud.Error or, when the caller's
	// context ended first, an error wrapping ctx.Err().
	Err error
}

// dialFunc replaces the dialer in tests (to send ECS host names to a local
// server, as /etc/hosts would).
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// String shows the configuration with the credentials redacted.
func (c Config) String() string {
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "(ECS public endpoints)"
	} else if u, err := url.Parse(endpoint); err == nil && u.User != nil {
		endpoint = u.Redacted() // refused by New, but never printed either
	}
	return fmt.Sprintf("Config{Endpoint: %s, Endpoints: %v, Network: %q, Region: %q, Insecure: %t, Credentials: %s, AssumeRole: %s, ConnectTimeout: %s, ReadTimeout: %s, MaxConcurrency: %d, UserAgent: %q, Observer: %t}",
		endpoint, redactedEndpoints(c.Endpoints), c.Network, c.Region, c.Insecure, c.Credentials.String(), c.AssumeRole.String(), c.ConnectTimeout, c.ReadTimeout, c.MaxConcurrency, c.UserAgent, c.Observer != nil)
}

func redactedEndpoints(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if u, err := url.Parse(v); err == nil && u.User != nil {
			v = u.Redacted()
		}
		out[k] = v
	}
	return out
}

// GoString is String, so %#v redacts too.
func (c Config) GoString() string { return c.String() }

// Format makes every fmt verb print String.
func (c Config) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// LogValue redacts for log/slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON redacts, for structured loggers that encode values as JSON.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Endpoint                    string
		Endpoints                   map[string]string
		Network, Region             string
		Insecure                    bool
		Credentials                 Credentials
		ConnectTimeout, ReadTimeout string
		MaxConcurrency              int
		UserAgent                   string
		Observer                    bool
	}{c.Endpoint, redactedEndpoints(c.Endpoints), c.Network, c.Region, c.Insecure, c.Credentials, c.ConnectTimeout.String(), c.ReadTimeout.String(), c.MaxConcurrency, c.UserAgent, c.Observer != nil})
}

// route is where one region's calls go.
type route struct {
	host   string // host[:port]
	scheme string // "HTTPS" or "HTTP", as the SDK spells it
}

// settings is a validated Config with the defaults applied.
type settings struct {
	def            route            // Endpoint; host "" = ECS's endpoint on network
	perRegion      map[string]route // Endpoints
	network        string
	region         string
	rootCAs        *x509.CertPool
	dial           dialFunc
	connectTimeout time.Duration
	readTimeout    time.Duration
	maxConcurrency int
}

// routeFor returns the host and scheme of region's calls: its Endpoints
// entry, else Endpoint, else ECS's documented regional endpoint on the
// network (always HTTPS; the names are in docs/ecs-api.md, "Endpoints").
func (s settings) routeFor(region string) route {
	if r, ok := s.perRegion[region]; ok {
		return r
	}
	if s.def.host != "" {
		return s.def
	}
	if s.network == NetworkVPC {
		return route{host: "ecs-vpc." + region + ".aliyuncs.com", scheme: "HTTPS"}
	}
	return route{host: "ecs." + region + ".aliyuncs.com", scheme: "HTTPS"}
}

// plainHTTP lists the endpoints configured as plain HTTP, for a warning.
func (s settings) plainHTTP() []string {
	var out []string
	if s.def.scheme == "HTTP" {
		out = append(out, "http://"+s.def.host)
	}
	regions := make([]string, 0, len(s.perRegion))
	for r := range s.perRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		if rt := s.perRegion[r]; rt.scheme == "HTTP" {
			out = append(out, r+"=http://"+rt.host)
		}
	}
	return out
}

func (c Config) settings() (settings, error) {
	s := settings{
		def:            route{scheme: "HTTPS"},
		network:        c.Network,
		region:         c.Region,
		rootCAs:        c.RootCAs,
		dial:           c.dial,
		connectTimeout: c.ConnectTimeout,
		readTimeout:    c.ReadTimeout,
		maxConcurrency: c.MaxConcurrency,
	}
	if s.connectTimeout < 0 || s.readTimeout < 0 {
		return s, errors.New("config: timeouts must not be negative")
	}
	if s.connectTimeout == 0 {
		s.connectTimeout = DefaultConnectTimeout
	}
	if s.readTimeout == 0 {
		s.readTimeout = DefaultReadTimeout
	}
	if s.maxConcurrency < 0 {
		return s, fmt.Errorf("config: MaxConcurrency %d is negative", s.maxConcurrency)
	}
	if s.maxConcurrency == 0 {
		s.maxConcurrency = DefaultMaxConcurrency
	}
	switch s.network {
	case "":
		s.network = NetworkPublic
	case NetworkPublic, NetworkVPC:
	default:
		return s, fmt.Errorf("config: Network %q is not %s or %s", c.Network, NetworkPublic, NetworkVPC)
	}
	if s.region == "" {
		s.region = DefaultRegion
	}
	if err := checkRegion("Region", s.region); err != nil {
		return s, fmt.Errorf("config: %w", err)
	}
	if err := c.Credentials.validate(); err != nil {
		return s, fmt.Errorf("config: %w", err)
	}
	if err := c.AssumeRole.validate(); err != nil {
		return s, fmt.Errorf("config: AssumeRole: %w", err)
	}
	plain := false
	if c.Endpoint != "" {
		rt, err := parseEndpoint(c.Endpoint, c.Insecure)
		if err != nil {
			return s, fmt.Errorf("config: Endpoint: %w", err)
		}
		s.def = rt
		plain = plain || rt.scheme == "HTTP"
	}
	for region, ep := range c.Endpoints {
		if err := checkRegion("Endpoints", region); err != nil {
			return s, fmt.Errorf("config: %w", err)
		}
		rt, err := parseEndpoint(ep, c.Insecure)
		if err != nil {
			return s, fmt.Errorf("config: Endpoints[%s]: %w", region, err)
		}
		if s.perRegion == nil {
			s.perRegion = map[string]route{}
		}
		s.perRegion[region] = rt
		plain = plain || rt.scheme == "HTTP"
	}
	if c.Insecure && !plain {
		return s, errors.New("config: Insecure (plain HTTP) needs an endpoint written as an http:// URL; the real ECS endpoints are HTTPS only")
	}
	return s, nil
}

// parseEndpoint turns one endpoint into a route. A host without a scheme is
// HTTPS; plain HTTP needs an explicit http:// URL and insecure.
func parseEndpoint(endpoint string, insecure bool) (route, error) {
	rt := route{host: endpoint, scheme: "HTTPS"}
	if strings.Contains(endpoint, "://") {
		u, perr := url.Parse(endpoint)
		if perr != nil {
			return route{}, fmt.Errorf("%q is not a URL", endpoint)
		}
		switch strings.ToLower(u.Scheme) {
		case "http":
			if !insecure {
				return route{}, fmt.Errorf("%q is plain HTTP; set Insecure to allow it", endpoint)
			}
			rt.scheme = "HTTP"
		case "https":
		default:
			return route{}, fmt.Errorf("%q: scheme must be http or https", endpoint)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return route{}, fmt.Errorf("%q: only scheme, host and port are allowed (ECS is served at /)", endpoint)
		}
		rt.host = u.Host
	}
	if err := validHost(rt.host); err != nil {
		return route{}, fmt.Errorf("%q: %w", endpoint, err)
	}
	return rt, nil
}

func validHost(hostport string) error {
	if hostport == "" {
		return errors.New("no host")
	}
	h := hostport
	if strings.Contains(hostport, ":") {
		var port string
		var err error
		h, port, err = net.SplitHostPort(hostport)
		if err != nil {
			return fmt.Errorf("bad host:port: %v", err)
		}
		if port == "" {
			return errors.New("empty port")
		}
		for _, r := range port {
			if r < '0' || r > '9' {
				return errors.New("port is not a number")
			}
		}
	}
	if h == "" {
		return errors.New("no host")
	}
	if strings.ContainsAny(h, "/?#@ \t\r\n") {
		return errors.New("host contains characters a host name cannot have")
	}
	return nil
}
