package aliyun

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultReadTimeout    = 15 * time.Second
	DefaultMaxConcurrency = 8
)

// Config configures a Provider.
type Config struct {
	// Endpoint is host[:port] or an http(s) URL with no path. Empty means the
	// real ECS endpoints (ecs.<region>.aliyuncs.com and the SDK's endpoint
	// table) over HTTPS.
	Endpoint string
	// Insecure sends plain HTTP to Endpoint. It is refused without an
	// explicit Endpoint: it exists for the emulator, never for the cloud.
	Insecure bool
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

// String shows the configuration with the credentials redacted.
func (c Config) String() string {
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "(ECS public endpoints)"
	} else if u, err := url.Parse(endpoint); err == nil && u.User != nil {
		endpoint = u.Redacted() // refused by New, but never printed either
	}
	return fmt.Sprintf("Config{Endpoint: %s, Insecure: %t, Credentials: %s, AssumeRole: %s, ConnectTimeout: %s, ReadTimeout: %s, MaxConcurrency: %d, UserAgent: %q, Observer: %t}",
		endpoint, c.Insecure, c.Credentials.String(), c.AssumeRole.String(), c.ConnectTimeout, c.ReadTimeout, c.MaxConcurrency, c.UserAgent, c.Observer != nil)
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
		Insecure                    bool
		Credentials                 Credentials
		ConnectTimeout, ReadTimeout string
		MaxConcurrency              int
		UserAgent                   string
		Observer                    bool
	}{c.Endpoint, c.Insecure, c.Credentials, c.ConnectTimeout.String(), c.ReadTimeout.String(), c.MaxConcurrency, c.UserAgent, c.Observer != nil})
}

// settings is a validated Config with the defaults applied.
type settings struct {
	host           string // "" = resolve per region
	scheme         string // "HTTPS" or "HTTP", as the SDK spells it
	connectTimeout time.Duration
	readTimeout    time.Duration
	maxConcurrency int
}

func (c Config) settings() (settings, error) {
	s := settings{
		scheme:         "HTTPS",
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
	if err := c.Credentials.validate(); err != nil {
		return s, fmt.Errorf("config: %w", err)
	}
	if err := c.AssumeRole.validate(); err != nil {
		return s, fmt.Errorf("config: AssumeRole: %w", err)
	}
	host, scheme, err := parseEndpoint(c.Endpoint, c.Insecure)
	if err != nil {
		return s, fmt.Errorf("config: Endpoint: %w", err)
	}
	s.host = host
	if scheme != "" {
		s.scheme = scheme
	}
	return s, nil
}

// parseEndpoint turns Endpoint/Insecure into the SDK's Domain and Scheme.
func parseEndpoint(endpoint string, insecure bool) (host, scheme string, err error) {
	if endpoint == "" {
		if insecure {
			return "", "", errors.New("plain HTTP (Insecure) needs an explicit endpoint; the real ECS endpoints are HTTPS only")
		}
		return "", "HTTPS", nil
	}
	scheme = "HTTPS"
	if insecure {
		scheme = "HTTP"
	}
	host = endpoint
	if strings.Contains(endpoint, "://") {
		u, perr := url.Parse(endpoint)
		if perr != nil {
			return "", "", fmt.Errorf("%q is not a URL", endpoint)
		}
		switch strings.ToLower(u.Scheme) {
		case "http":
			if !insecure {
				return "", "", fmt.Errorf("%q is plain HTTP; set Insecure to allow it", endpoint)
			}
		case "https":
			if insecure {
				return "", "", fmt.Errorf("%q is HTTPS but Insecure asks for plain HTTP", endpoint)
			}
		default:
			return "", "", fmt.Errorf("%q: scheme must be http or https", endpoint)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", "", fmt.Errorf("%q: only scheme, host and port are allowed (ECS is served at /)", endpoint)
		}
		host = u.Host
	}
	if err := validHost(host); err != nil {
		return "", "", fmt.Errorf("%q: %w", endpoint, err)
	}
	return host, scheme, nil
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
