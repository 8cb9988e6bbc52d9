package aliyun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
)

// asCloudError fails the test unless err is a *cloud.Error.
func asCloudError(t *testing.T, err error) *cloud.Error {
	t.Helper()
	var ce *cloud.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %T %v, want *cloud.Error", err, err)
	}
	return ce
}

// TestErrorResponses drives the SDK through every shape of failed answer and
// checks code, class, status, request id and message.
func TestErrorResponses(t *testing.T) {
	cases := []struct {
		name      string
		reply     func(w http.ResponseWriter)
		code      string
		class     cloud.Class
		status    int
		requestID string
		message   string // substring
	}{
		{"JSON throttling", func(w http.ResponseWriter) {
			ecsError(w, 400, "Throttling.User", "Request was denied due to user flow control.")
		}, "Throttling.User", cloud.ClassThrottled, 400, "req-Throttling.User", "user flow control"},
		{"JSON not found", func(w http.ResponseWriter) {
			ecsError(w, 404, "InvalidImageId.NotFound", "The specified ImageId does not exist.")
		}, "InvalidImageId.NotFound", cloud.ClassNotFound, 404, "req-InvalidImageId.NotFound", "does not exist"},
		{"JSON internal error", func(w http.ResponseWriter) {
			ecsError(w, 500, "InternalError", "The request processing has failed due to some unknown error.")
		}, "InternalError", cloud.ClassRetryable, 500, "req-InternalError", "unknown error"},
		{"JSON unknown 4xx code", func(w http.ResponseWriter) {
			ecsError(w, 400, "Brand.NewCode", "something new")
		}, "Brand.NewCode", cloud.ClassPermanent, 400, "req-Brand.NewCode", "something new"},
		{"HTML 502 from a proxy", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>"+strings.Repeat("x", 2000)+"</body></html>")
		}, "502", cloud.ClassRetryable, 502, "", "502 Bad Gateway"},
		{"empty 503", func(w http.ResponseWriter) { w.WriteHeader(503) }, "503", cloud.ClassRetryable, 503, "", "unrecognised"},
		{"JSON without Code", func(w http.ResponseWriter) {
			replyJSON(w, 403, map[string]string{"Message": "no code here"})
		}, "403", cloud.ClassPermanent, 403, "", "no code here"},
		{"numeric Code (the SDK would panic)", func(w http.ResponseWriter) {
			replyJSON(w, 400, map[string]any{"Code": 123, "Message": "m", "RequestId": "r"})
		}, CodeInvalidResponse, cloud.ClassRetryable, 0, "", "could not read"},
		{"2xx that is not JSON", func(w http.ResponseWriter) {
			w.WriteHeader(200)
			io.WriteString(w, "<html>maintenance</html>")
		}, CodeInvalidResponse, cloud.ClassRetryable, 0, "", "unmarshal"},
		{"empty 200: CopyImage without ImageId", func(w http.ResponseWriter) { w.WriteHeader(200) },
			CodeInvalidResponse, cloud.ClassRetryable, 200, "", "without an ImageId"},
		{"signature mismatch: dump cut", func(w http.ResponseWriter) {
			ecsError(w, 400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3D"+testKeyID)
		}, "SignatureDoesNotMatch", cloud.ClassPermanent, 400, "req-SignatureDoesNotMatch", "not matched with our calculation."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) { c.reply(w) })
			var observed []Call
			var mu sync.Mutex
			p := f.provider(func(cfg *Config) {
				cfg.Observer = func(call Call) { mu.Lock(); observed = append(observed, call); mu.Unlock() }
			})
			_, err := p.CopyImage(context.Background(), cloud.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageID: "m-1", DestinationRegion: "cn-beijing"})
			ce := asCloudError(t, err)
			if ce.Code != c.code || ce.Class != c.class || ce.HTTPStatus != c.status || ce.RequestID != c.requestID {
				t.Errorf("got code %q class %v status %d request %q; want %q %v %d %q",
					ce.Code, ce.Class, ce.HTTPStatus, ce.RequestID, c.code, c.class, c.status, c.requestID)
			}
			if ce.Action != "CopyImage" || ce.Region != "cn-hangzhou" {
				t.Errorf("action %q region %q", ce.Action, ce.Region)
			}
			if !strings.Contains(ce.Message, c.message) {
				t.Errorf("message %q does not contain %q", ce.Message, c.message)
			}
			if len(ce.Message) > maxMessage+len("…") {
				t.Errorf("message is %d bytes long", len(ce.Message))
			}
			if strings.Contains(ce.Message, "string to sign") {
				t.Errorf("message keeps the string to sign: %q", ce.Message)
			}
			if cloud.ClassOf(err) != c.class {
				t.Errorf("cloud.ClassOf = %v", cloud.ClassOf(err))
			}
			mu.Lock()
			defer mu.Unlock()
			if len(observed) != 1 || observed[0].Code != c.code || observed[0].HTTPStatus != c.status || observed[0].Err == nil {
				t.Errorf("observer saw %+v", observed)
			}
		})
	}
}

// TestDescribeImagesEmpty200 is the one empty answer that is fine: no images.
func TestDescribeImagesEmpty200(t *testing.T) {
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) { w.WriteHeader(200) })
	got, err := f.provider().DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-beijing"})
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want no images, nil", got, err)
	}
}

// hangingServer accepts requests and answers none until the request is
// abandoned by the client; arrived receives one value per request.
func hangingServer(t *testing.T) (srv *httptest.Server, arrived chan struct{}, abandoned chan struct{}) {
	t.Helper()
	arrived = make(chan struct{}, 16)
	abandoned = make(chan struct{}, 16)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
		abandoned <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return srv, arrived, abandoned
}

func hangingProvider(t *testing.T, srv *httptest.Server, readTimeout time.Duration) *Provider {
	t.Helper()
	p, err := New(Config{Endpoint: srv.URL, Insecure: true, ReadTimeout: readTimeout,
		Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret, SecurityToken: testToken}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestReadTimeoutOnHungServer(t *testing.T) {
	srv, _, abandoned := hangingServer(t)
	p := hangingProvider(t, srv, 200*time.Millisecond)
	_, err := p.DescribeImages(context.Background(), cloud.ImageQuery{Region: "cn-beijing"})
	ce := asCloudError(t, err)
	if ce.Code != CodeTimeout || ce.Class != cloud.ClassRetryable || ce.HTTPStatus != 0 {
		t.Errorf("got %q %v %d, want %s retryable 0", ce.Code, ce.Class, ce.HTTPStatus, CodeTimeout)
	}
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("a timeout should map to ErrUnavailable: %v", err)
	}
	<-abandoned // the client hung up: the exchange is over, not leaked
	// The URL (with AccessKeyId, Signature and the STS token) is not in
	// the message.
	for _, s := range []string{testToken, testSecret, "Signature=", "http://"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("timeout error contains %q: %v", s, err)
		}
	}
}

func TestContextCancelAbortsTheCall(t *testing.T) {
	srv, arrived, abandoned := hangingServer(t)
	p := hangingProvider(t, srv, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.DeleteImage(ctx, "cn-beijing", "m-1") }()
	<-arrived
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The HTTP request itself was aborted, not left running until the read
	// timeout (one minute).
	<-abandoned
}

func TestContextDeadlineShortensTheCall(t *testing.T) {
	srv, _, abandoned := hangingServer(t)
	p := hangingProvider(t, srv, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	err := p.CancelCopyImage(ctx, "cn-beijing", "m-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if cloud.ClassOf(err) != cloud.ClassRetryable {
		t.Errorf("class %v, want retryable", cloud.ClassOf(err))
	}
	<-abandoned
}

func TestContextAlreadyDone(t *testing.T) {
	f := newFakeECS(t, nil)
	p := f.provider()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.DeleteImage(ctx, "cn-beijing", "m-1"); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := len(f.requests("")); n != 0 {
		t.Errorf("%d requests sent with a done context", n)
	}
}

func TestTransportErrorHasNoURLOrSecret(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	endpoint := srv.URL
	srv.Close() // nothing listens there any more
	p, err := New(Config{Endpoint: endpoint, Insecure: true,
		Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret, SecurityToken: testToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.DeleteImage(context.Background(), "cn-beijing", "m-1")
	ce := asCloudError(t, err)
	if ce.Code != CodeTransport || ce.Class != cloud.ClassRetryable {
		t.Errorf("got %q %v, want %s retryable", ce.Code, ce.Class, CodeTransport)
	}
	for _, s := range []string{testToken, testSecret, "SecurityToken", "Signature"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error contains %q: %v", s, err)
		}
	}
}

// TestNoSecretInAnyError: whatever the server answers, even an echo of the
// secret, no error and no observed call carries the secret or the token.
func TestNoSecretInAnyError(t *testing.T) {
	replies := []func(w http.ResponseWriter, q url.Values){
		func(w http.ResponseWriter, q url.Values) {
			ecsError(w, 400, "InvalidParameter", "bad value "+testSecret+" and token "+testToken)
		},
		func(w http.ResponseWriter, q url.Values) {
			ecsError(w, 400, "SignatureDoesNotMatch", "Specified signature is not matched. server string to sign is:"+testSecret)
		},
		func(w http.ResponseWriter, q url.Values) {
			w.WriteHeader(502)
			io.WriteString(w, "<html>"+testSecret+" "+testToken+"</html>")
		},
		func(w http.ResponseWriter, q url.Values) {
			replyJSON(w, 400, map[string]any{"Code": 1, "Message": testSecret})
		},
		func(w http.ResponseWriter, q url.Values) {
			w.WriteHeader(200)
			io.WriteString(w, "not json "+testSecret)
		},
	}
	for i, reply := range replies {
		f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) { reply(w, q) })
		var seen []string
		var mu sync.Mutex
		p := f.provider(func(c *Config) {
			c.Credentials.SecurityToken = testToken
			c.Observer = func(call Call) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, fmt.Sprintf("%+v %v", call, call.Err))
			}
		})
		ctx := context.Background()
		var errs []error
		_, err := p.CopyImage(ctx, cloud.CopyRequest{SourceRegion: "a", SourceImageID: "m-1", DestinationRegion: "b"})
		errs = append(errs, err)
		_, err = p.DescribeImages(ctx, cloud.ImageQuery{Region: "a"})
		errs = append(errs, err)
		errs = append(errs, p.DeleteImage(ctx, "a", "m-1"), p.TagImages(ctx, "a", []string{"m-1"}, map[string]string{"k": "v"}))
		for _, err := range errs {
			if err == nil {
				t.Errorf("reply %d: no error", i)
				continue
			}
			text := fmt.Sprintf("%v %+v %#v", err, err, err)
			if strings.Contains(text, testSecret) || strings.Contains(text, testToken) {
				t.Errorf("reply %d: secret in error: %s", i, text)
			}
		}
		mu.Lock()
		for _, s := range seen {
			if strings.Contains(s, testSecret) || strings.Contains(s, testToken) {
				t.Errorf("reply %d: secret in observed call: %s", i, s)
			}
		}
		mu.Unlock()
	}
}

// TestHTTPSByDefault: without Insecure the adapter speaks TLS and verifies
// the certificate (the test server's is self-signed, so the call fails on
// it), never falling back to plain HTTP.
func TestHTTPSByDefault(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a request got through an untrusted certificate")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is expected
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	p, err := New(Config{Endpoint: host, Credentials: Credentials{AccessKeyID: testKeyID, AccessKeySecret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.DeleteImage(context.Background(), "cn-beijing", "m-1")
	ce := asCloudError(t, err)
	if ce.Code != CodeTransport || !strings.Contains(ce.Message, "certificate") {
		t.Errorf("err = %v, want a certificate failure", err)
	}
}

// TestConcurrencyIsBounded: with MaxConcurrency 2 no more than two requests
// are ever in flight, however many callers there are.
func TestConcurrencyIsBounded(t *testing.T) {
	var (
		mu       sync.Mutex
		inflight int
		peak     int
	)
	arrived := make(chan struct{}, 16)
	gate := make(chan struct{})
	f := newFakeECS(t, func(w http.ResponseWriter, r *http.Request, q url.Values) {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		mu.Unlock()
		arrived <- struct{}{}
		<-gate
		mu.Lock()
		inflight--
		mu.Unlock()
		replyJSON(w, 200, map[string]string{"RequestId": "r"})
	})
	p := f.provider(func(c *Config) { c.MaxConcurrency = 2 })
	const callers = 6
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.DeleteImage(context.Background(), "cn-beijing", "m-1")
		}()
	}
	for i := range callers {
		<-arrived
		if i >= 1 {
			gate <- struct{}{} // let one finish once two are in
		}
	}
	gate <- struct{}{}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if peak > 2 {
		t.Errorf("%d requests in flight at once, want at most 2", peak)
	}
}

func TestCloseStopsNewCalls(t *testing.T) {
	f := newFakeECS(t, nil)
	p := f.provider()
	if err := p.DeleteImage(context.Background(), "cn-beijing", "m-1"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	p.Close() // idempotent
	err := p.DeleteImage(context.Background(), "cn-beijing", "m-1")
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("after Close: %v, want ErrUnavailable", err)
	}
	if n := len(f.requests("")); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
