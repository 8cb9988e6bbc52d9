package aliyun

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ecsCert is a certificate for the ECS host names of the regions the tests
// use, signed by a test CA the provider is told to trust (Config.RootCAs):
// the TLS handshake verifies the very host name the adapter chose.
func ecsCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test ECS"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"*.aliyuncs.com", "*.cn-beijing.aliyuncs.com", "*.ap-southeast-1.aliyuncs.com", "*.cn-shanghai.aliyuncs.com", "*.cn-hangzhou.aliyuncs.com", "ecs.example.test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// hit is what a test server saw of one request.
type hit struct {
	host, scheme, region, keyID string
}

// recordingECS serves DeleteImage (and anything else) with an empty success
// and records the Host header, whether the connection was TLS, and the
// request's RegionId.
type recordingECS struct {
	mu   sync.Mutex
	hits []hit
}

func (r *recordingECS) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	req.ParseForm()
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	r.mu.Lock()
	r.hits = append(r.hits, hit{host: req.Host, scheme: scheme, region: req.Form.Get("RegionId"), keyID: req.Form.Get("AccessKeyId")})
	r.mu.Unlock()
	replyJSON(w, 200, map[string]string{"RequestId": "r"})
}

func (r *recordingECS) take() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hits
	r.hits = nil
	return h
}

// TestEndpointPerRegionAndNetwork: the real SDK, over real TLS, sends each
// region's calls to the host ECS documents for the network (public
// ecs.<region>.aliyuncs.com, VPC ecs-vpc.<region>.aliyuncs.com), or to the
// region's override; an override without a scheme is HTTPS; only an
// explicit http:// URL is plain HTTP, and the provider lists it for a
// warning. Every connection is dialled to the local server, as /etc/hosts
// would; the certificate check is the real one, for the chosen host name.
func TestEndpointPerRegionAndNetwork(t *testing.T) {
	cert, pool := ecsCert(t)
	rec := &recordingECS{}
	tlsSrv := httptest.NewUnstartedServer(rec)
	tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(rec)
	defer plainSrv.Close()
	tlsAddr := tlsSrv.Listener.Addr().String()
	plainAddr := plainSrv.Listener.Addr().String()
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	toLocal := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == plainAddr {
			return dialer.DialContext(ctx, network, addr)
		}
		return dialer.DialContext(ctx, network, tlsAddr) // every ECS host
	}

	cases := []struct {
		name      string
		cfg       Config
		want      map[string]hit // region -> host and scheme
		plainHTTP []string
	}{
		{
			name: "public",
			cfg:  Config{},
			want: map[string]hit{
				"cn-beijing":     {host: "ecs.cn-beijing.aliyuncs.com", scheme: "https"},
				"ap-southeast-1": {host: "ecs.ap-southeast-1.aliyuncs.com", scheme: "https"},
			},
		},
		{
			name: "vpc",
			cfg:  Config{Network: NetworkVPC},
			want: map[string]hit{
				"cn-beijing":     {host: "ecs-vpc.cn-beijing.aliyuncs.com", scheme: "https"},
				"ap-southeast-1": {host: "ecs-vpc.ap-southeast-1.aliyuncs.com", scheme: "https"},
			},
		},
		{
			name: "vpc with overrides",
			cfg: Config{Network: NetworkVPC, Insecure: true, Endpoints: map[string]string{
				"ap-southeast-1": "ecs.ap-southeast-1.aliyuncs.com", // public, scheme-less: HTTPS
				"cn-shanghai":    "ecs.example.test:" + tlsPort,     // a private host: HTTPS
				"cn-hangzhou":    "http://" + plainAddr,             // explicit plain HTTP
			}},
			want: map[string]hit{
				"cn-beijing":     {host: "ecs-vpc.cn-beijing.aliyuncs.com", scheme: "https"},
				"ap-southeast-1": {host: "ecs.ap-southeast-1.aliyuncs.com", scheme: "https"},
				"cn-shanghai":    {host: "ecs.example.test:" + tlsPort, scheme: "https"},
				"cn-hangzhou":    {host: plainAddr, scheme: "http"},
			},
			plainHTTP: []string{"cn-hangzhou=http://" + plainAddr},
		},
		{
			name: "one endpoint for all, scheme-less",
			cfg:  Config{Endpoint: "ecs.example.test:" + tlsPort},
			want: map[string]hit{
				"cn-beijing":     {host: "ecs.example.test:" + tlsPort, scheme: "https"},
				"ap-southeast-1": {host: "ecs.example.test:" + tlsPort, scheme: "https"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.RootCAs = pool
			cfg.Credentials = Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret}
			withDial(&cfg, toLocal)
			p, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.PlainHTTPEndpoints(); !slices.Equal(got, c.plainHTTP) {
				t.Errorf("PlainHTTPEndpoints = %q, want %q", got, c.plainHTTP)
			}
			for region, want := range c.want {
				if err := p.DeleteImage(context.Background(), region, "m-1234"); err != nil {
					t.Fatalf("%s: %v", region, err)
				}
				hits := rec.take()
				if len(hits) != 1 {
					t.Fatalf("%s: %d requests, want 1", region, len(hits))
				}
				if h := hits[0]; h.host != want.host || h.scheme != want.scheme || h.region != region {
					t.Errorf("%s: sent to %s://%s (RegionId %s), want %s://%s", region, h.scheme, h.host, h.region, want.scheme, want.host)
				}
				if got, wantURL := p.Endpoint(region), want.scheme+"://"+want.host; got != wantURL {
					t.Errorf("Endpoint(%s) = %s, want %s", region, got, wantURL)
				}
			}
		})
	}
}

// TestSchemelessEndpointIsHTTPS: an endpoint written without a scheme is
// HTTPS even to a server that speaks only plain HTTP (the call fails, and
// nothing reaches the server in clear): the AccessKeyId never goes out
// unencrypted by omission.
func TestSchemelessEndpointIsHTTPS(t *testing.T) {
	rec := &recordingECS{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	p, err := New(Config{Endpoints: map[string]string{"cn-beijing": host},
		Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PlainHTTPEndpoints() != nil {
		t.Errorf("a scheme-less endpoint is listed as plain HTTP")
	}
	err = p.DeleteImage(context.Background(), "cn-beijing", "m-1234")
	if ce := asCloudError(t, err); ce.Code != CodeTransport {
		t.Errorf("err = %v, want a TLS failure against a plain HTTP server", err)
	}
	if hits := rec.take(); len(hits) != 0 {
		t.Errorf("a request reached the server in clear: %+v", hits)
	}
	if got := p.Endpoint("cn-beijing"); got != "https://"+host {
		t.Errorf("Endpoint = %s, want https://%s", got, host)
	}
}

// TestDescribeRegionsAsksConfiguredRegion: with VPC endpoints the region
// list comes from the daemon's own region's endpoint (a VPC endpoint serves
// only its region).
func TestDescribeRegionsAsksConfiguredRegion(t *testing.T) {
	cert, pool := ecsCert(t)
	var mu sync.Mutex
	var hosts []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		replyJSON(w, 200, map[string]any{"RequestId": "r", "Regions": map[string]any{"Region": []map[string]string{{"RegionId": "cn-shanghai"}}}})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	cfg := Config{Network: NetworkVPC, Region: "cn-shanghai", RootCAs: pool,
		Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret}}
	addr := srv.Listener.Addr().String()
	withDial(&cfg, func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	})
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	regions, err := p.DescribeRegions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(regions) != 1 || regions[0].ID != "cn-shanghai" {
		t.Errorf("regions = %+v", regions)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hosts) != 1 || hosts[0] != "ecs-vpc.cn-shanghai.aliyuncs.com" {
		t.Errorf("DescribeRegions went to %q, want ecs-vpc.cn-shanghai.aliyuncs.com", hosts)
	}
}

func TestStripSDKDebug(t *testing.T) {
	cases := []struct {
		in       []string
		want     []string
		stripped bool
	}{
		{[]string{"A=1", "DEBUG=sdk"}, []string{"A=1"}, true},
		{[]string{"DEBUG=tea,sdk,x", "B=2"}, []string{"DEBUG=tea,x", "B=2"}, true},
		{[]string{"DEBUG=sdkx", "DEBUG_SDK=sdk"}, []string{"DEBUG=sdkx", "DEBUG_SDK=sdk"}, false},
		{[]string{"DEBUG="}, []string{"DEBUG="}, false},
	}
	for _, c := range cases {
		got, stripped := StripSDKDebug(c.in)
		if !slices.Equal(got, c.want) || stripped != c.stripped {
			t.Errorf("StripSDKDebug(%q) = %q, %t; want %q, %t", c.in, got, stripped, c.want, c.stripped)
		}
	}
}

// TestKeyIDsMaskedInErrors: an error that quotes an access key id (ECS's
// own answer here, as a credential provider's may) shows its last four
// characters only, whether the id is the provider's or another one.
func TestKeyIDsMaskedInErrors(t *testing.T) {
	const other = "LTAIotherkey99887766"
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		replyJSON(w, 403, map[string]string{"Code": "Forbidden.RAM", "RequestId": "x",
			"Message": "User " + q.Get("AccessKeyId") + " (also " + other + ", STS.NTx9abcdefghijkl) is not authorized"})
	})
	p := f.provider()
	err := p.DeleteImage(context.Background(), "cn-beijing", "m-1234")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, id := range []string{testKeyID, other, "STS.NTx9abcdefghijkl"} {
		if strings.Contains(msg, id) {
			t.Errorf("error shows %s whole: %s", id, msg)
		}
		if !strings.Contains(msg, "****"+id[len(id)-4:]) {
			t.Errorf("error does not show %s masked: %s", id, msg)
		}
	}
}
