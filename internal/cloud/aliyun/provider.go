package aliyun

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
)

// clientRegion is the region the SDK clients are created for. Every request
// sets its own RegionId and endpoint, so it matters for nothing.
const clientRegion = "cn-hangzhou"

// Provider is the ECS implementation of cloud.Provider. It is safe for
// concurrent use; at most Config.MaxConcurrency calls are in flight, the rest
// wait for a client (or for their context).
type Provider struct {
	set      settings
	observer func(Call)
	creds    *credentialSource
	base     *http.Transport
	pool     chan *slot

	mu      sync.Mutex
	closed  bool
	done    chan struct{} // closed by Close: wakes callers waiting for a slot
	running sync.WaitGroup
}

var _ cloud.Provider = (*Provider)(nil)

// String describes the provider without its credentials.
func (p *Provider) String() string {
	where := "ECS " + p.set.network + " endpoints"
	if p.set.def.host != "" {
		where = p.set.def.scheme + " " + p.set.def.host
	}
	if n := len(p.set.perRegion); n > 0 {
		where += fmt.Sprintf(" (%d regions overridden)", n)
	}
	return fmt.Sprintf("aliyun.Provider{%s, %d clients}", where, p.set.maxConcurrency)
}

// Endpoint returns the URL region's calls go to, for logs and status.
func (p *Provider) Endpoint(region string) string {
	rt := p.set.routeFor(region)
	return strings.ToLower(rt.scheme) + "://" + rt.host
}

// PlainHTTPEndpoints lists the configured endpoints that are plain HTTP
// (nil if none), so that the caller can warn about them.
func (p *Provider) PlainHTTPEndpoints() []string { return p.set.plainHTTP() }

// CredentialsInUse describes the credentials of the last call, for status
// and logs: the access key id's last four characters and the SDK provider
// that produced it (e.g. "****0001 from default/env"). "" until resolved.
func (p *Provider) CredentialsInUse() string { return p.creds.summary() }

// CheckCredentials resolves the credentials once, for a clear reason at
// start. A failure is a *cloud.Error with CodeCredentials: retryable, since
// a metadata service or STS that is down now may answer later.
func (p *Provider) CheckCredentials() error {
	if _, err := p.creds.GetCredentials(); err != nil {
		return p.toCloudError("GetCredentials", p.set.region, err)
	}
	return nil
}

// slot is one SDK client and the transport that gives its requests the
// caller's context. A slot is used by one call at a time.
type slot struct {
	client *ecs.Client
	rt     *callTransport
}

// New checks cfg and builds the client pool. It makes no call and does not
// resolve the credentials (a metadata service or STS may be down at start):
// see CheckCredentials.
func New(cfg Config) (*Provider, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	creds := newCredentialSource(cfg.Credentials)
	if cfg.AssumeRole != nil {
		if creds, err = newRoleSource(cfg.AssumeRole, cfg.Credentials); err != nil {
			return nil, err
		}
	}
	// One transport for the whole pool: *http.Transport is goroutine-safe
	// and sharing it shares keep-alive connections. The SDK only rewrites
	// transports whose type is *http.Transport, so wrapping it in
	// callTransport also keeps the SDK's hands off it (its per-call dialer
	// and TLS rewrites are where its data races are).
	dial := set.dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: set.connectTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSHandshakeTimeout:   set.connectTimeout,
		MaxIdleConns:          2 * set.maxConcurrency,
		MaxIdleConnsPerHost:   set.maxConcurrency,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	if set.rootCAs != nil {
		base.TLSClientConfig = &tls.Config{RootCAs: set.rootCAs, MinVersion: tls.VersionTLS12}
	}
	p := &Provider{
		set:      set,
		observer: cfg.Observer,
		creds:    creds,
		base:     base,
		pool:     make(chan *slot, set.maxConcurrency),
		done:     make(chan struct{}),
	}
	for range set.maxConcurrency {
		s, err := p.newSlot(cfg.UserAgent)
		if err != nil {
			base.CloseIdleConnections()
			return nil, fmt.Errorf("aliyun: creating the SDK client: %w", err)
		}
		p.pool <- s
	}
	return p, nil
}

func (p *Provider) newSlot(userAgent string) (*slot, error) {
	rt := &callTransport{base: p.base}
	conf := sdk.NewConfig().
		WithAutoRetry(false). // the scheduler owns retries
		WithMaxRetryTime(0).
		WithScheme("HTTPS")
	conf.Transport = rt
	if userAgent != "" {
		conf = conf.WithUserAgent(userAgent)
	}
	c, err := ecs.NewClientWithOptions(clientRegion, conf, p.creds)
	if err != nil {
		return nil, err
	}
	c.SetConnectTimeout(p.set.connectTimeout)
	c.SetReadTimeout(p.set.readTimeout)
	return &slot{client: c, rt: rt}, nil
}

// Close stops new calls, waits for the calls in flight (at most ReadTimeout:
// calls whose caller gave up were already cancelled) and releases idle
// connections. It is safe to call more than once.
func (p *Provider) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.running.Wait()
	p.base.CloseIdleConnections()
}

// errClosed is returned by calls made after Close.
var errClosed = fmt.Errorf("aliyun: provider is closed: %w", errdefs.ErrUnavailable)

// outcome is what one SDK call produced.
type outcome struct {
	requestID string
	err       error
}

// do runs one API call on a pooled client. call receives the client and
// must return the response's RequestId. The request's timeouts are set from
// the configuration and ctx's deadline; ctx's cancellation aborts the HTTP
// exchange. If ctx ends first do returns at once with an error wrapping
// ctx.Err(); the client rejoins the pool when its call has unwound.
func (p *Provider) do(ctx context.Context, action, region string, req requests.AcsRequest, call func(*ecs.Client) (string, error)) error {
	start := time.Now()
	s, err := p.acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			err = ctxError(ctx, action, region)
		}
		p.observe(Call{Action: action, Region: region, Duration: time.Since(start), Err: err})
		return err
	}
	timeout := p.set.readTimeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		p.release(s)
		err := ctxError(ctx, action, region)
		p.observe(Call{Action: action, Region: region, Duration: time.Since(start), Err: err})
		return err
	}
	req.SetReadTimeout(timeout)
	req.SetConnectTimeout(min(p.set.connectTimeout, timeout))
	// Every request names its endpoint and scheme, so the SDK's endpoint
	// tables and location service never decide where a signed request goes.
	rt := p.set.routeFor(region)
	req.SetDomain(rt.host)
	req.SetScheme(rt.scheme)

	result := make(chan outcome, 1)
	go func() {
		defer p.release(s)
		s.rt.ctx = ctx
		defer func() { s.rt.ctx = nil }()
		result <- p.invoke(s.client, call)
	}()

	var out outcome
	select {
	case out = <-result:
	case <-ctx.Done():
		select {
		case out = <-result:
			// Finished in the same instant: a success (a copy started) is
			// worth more to the caller than the cancellation.
		default:
			err := ctxError(ctx, action, region)
			p.observe(Call{Action: action, Region: region, Duration: time.Since(start), Err: err})
			return err
		}
	}
	if out.err == nil {
		p.observe(Call{Action: action, Region: region, RequestID: out.requestID, HTTPStatus: http.StatusOK, Duration: time.Since(start)})
		return nil
	}
	if ctxEnded(ctx) {
		// The HTTP exchange failed because ctx ended (or its deadline, to
		// which the read timeout was cut, passed a hair before ctx's own
		// timer fired): report that, not the transport's view of it.
		err := ctxError(ctx, action, region)
		p.observe(Call{Action: action, Region: region, Duration: time.Since(start), Err: err})
		return err
	}
	ce := p.toCloudError(action, region, out.err)
	p.observe(Call{Action: action, Region: region, Code: ce.Code, RequestID: ce.RequestID, HTTPStatus: ce.HTTPStatus, Duration: time.Since(start), Err: ce})
	return ce
}

// invoke runs call, turning a panic inside the SDK into an error: the SDK
// type-asserts fields of error bodies without checking (a numeric "Code"
// panics), and a bad answer from the network must not take the daemon down.
func (p *Provider) invoke(c *ecs.Client, call func(*ecs.Client) (string, error)) (out outcome) {
	defer func() {
		if v := recover(); v != nil {
			out = outcome{err: &sdkPanic{value: fmt.Sprint(v)}}
		}
	}()
	id, err := call(c)
	return outcome{requestID: id, err: err}
}

func (p *Provider) acquire(ctx context.Context) (*slot, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosed
	}
	p.running.Add(1)
	p.mu.Unlock()
	select {
	case s := <-p.pool:
		return s, nil
	case <-ctx.Done():
		p.running.Done()
		return nil, ctx.Err()
	case <-p.done:
		p.running.Done()
		return nil, errClosed
	}
}

func (p *Provider) release(s *slot) {
	p.pool <- s
	p.running.Done()
}

func (p *Provider) observe(c Call) {
	if p.observer != nil {
		p.observer(c)
	}
}

// ctxError is the error of a call abandoned because ctx ended. It wraps
// ctx.Err(), so errors.Is(err, context.DeadlineExceeded) and cloud.ClassOf
// (retryable for a deadline) work.
func ctxError(ctx context.Context, action, region string) error {
	err := ctx.Err()
	if err == nil {
		err = context.DeadlineExceeded // see ctxEnded
	}
	return fmt.Errorf("%s in %s: %w", action, region, err)
}

// ctxEnded reports whether ctx is done or its deadline has passed.
func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// callTransport hands each request the context of the call running on its
// slot, so that cancelling the caller's context aborts the HTTP exchange
// (the SDK builds its requests without a context). ctx is written only by
// the goroutine that owns the slot, before and after its call.
type callTransport struct {
	base http.RoundTripper
	ctx  context.Context
}

func (t *callTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	callCtx := t.ctx
	if callCtx == nil {
		return t.base.RoundTrip(r)
	}
	// Keep r's own context (http.Client puts the read timeout's deadline on
	// it) and add the caller's cancellation.
	ctx, cancel := context.WithCancelCause(r.Context())
	stop := context.AfterFunc(callCtx, func() { cancel(context.Cause(callCtx)) })
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		stop()
		cancel(nil)
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: func() { stop(); cancel(nil) }}
	return resp, nil
}

// releasingBody releases the per-request context once the SDK has read the
// body; cancelling any earlier would cut the body off.
type releasingBody struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
