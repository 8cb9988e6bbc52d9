package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

// emulator is the ECS emulator serving the fleet on a real HTTP listener,
// with a trace of the calls that matter for the analysis.
type emulator struct {
	emu      *ecsemu.Emulator
	srv      *http.Server
	Endpoint string
	KeyID    string
	Secret   string
	trace    *trace
}

// startEmulator serves the fleet on 127.0.0.1. throttlePerMinute is the ECS
// flow control in calls per 60 emulated seconds; the emulator runs on the
// wall clock, so its bucket refills scale times faster, and holds
// throttlePerMinute tokens, as ECS's does.
func startEmulator(f *fleet, scale, throttlePerMinute float64, seed int64) (*emulator, error) {
	keyID, secret := "LTAIfleet"+randomHex(8), randomHex(16)
	startup := f.Startup
	if startup == 0 {
		startup = -1 // the emulator reads 0 as its default; negative is none
	}
	emu, err := ecsemu.New(ecsemu.Config{
		Credentials:        map[string]string{keyID: secret},
		Seed:               seed,
		TimeScale:          scale,
		CopySlotsPerRegion: f.Slots,
		DefaultRateMiBps:   f.RateMiBps,
		StartupDelay:       startup,
		ThrottleRate:       throttlePerMinute * scale,
		// ECS's real burst (a minute's worth, 1,000), refilled at the
		// scaled rate: scaling the burst too would let a client send
		// 950,000 calls at once without a refusal.
		ThrottleBurst:       max(int(throttlePerMinute), 1),
		CopyConflict:        f.CopyConflict,
		CreateFailedRate:    f.FailRate,
		ImageQuotaPerRegion: max(ecsemu.DefaultImageQuotaPerRegion, len(f.Images)+10),
		Images:              f.fixtures(),
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("emulator listener: %w", err)
	}
	tr := &trace{copies: map[string][]accepted{}, polls: map[string][]time.Time{}}
	e := &emulator{emu: emu, Endpoint: "http://" + ln.Addr().String(), KeyID: keyID, Secret: secret, trace: tr}
	e.srv = &http.Server{Handler: tr.wrap(emu), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("fleetbench: emulator stopped: %v\n", err)
		}
	}()
	return e, nil
}

func (e *emulator) close() {
	e.srv.Close()
	e.emu.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// trace records, for the analysis, when ECS accepted each copy (per
// destination region) and when each region was polled (DescribeImages by
// image id). It reads the requests on their way into the emulator,
// without changing them.
type trace struct {
	mu     sync.Mutex
	copies map[string][]accepted  // region -> accepted CopyImage calls, in order
	polls  map[string][]time.Time // region -> poll times
}

func (t *trace) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params := r.URL.Query()
		if r.Body != nil && r.Method == http.MethodPost {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err == nil {
				if form, err := url.ParseQuery(string(body)); err == nil {
					for k, v := range form {
						params[k] = append(params[k], v...)
					}
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		switch params.Get("Action") {
		case "CopyImage":
			rec := &recorder{ResponseWriter: w}
			h.ServeHTTP(rec, r)
			if rec.status == http.StatusOK {
				var body struct{ ImageId string }
				if json.Unmarshal(rec.body.Bytes(), &body) == nil && body.ImageId != "" {
					t.mu.Lock()
					dst := params.Get("DestinationRegionId")
					t.copies[dst] = append(t.copies[dst], accepted{at: time.Now(), source: params.Get("ImageId"), image: body.ImageId})
					t.mu.Unlock()
				}
			}
			return
		case "DescribeImages":
			// A poll names its copies; a listing by tag (replicatord's
			// adoption sweep of a new state file) is not one.
			if params.Get("ImageId") != "" {
				t.mu.Lock()
				r := params.Get("RegionId")
				t.polls[r] = append(t.polls[r], time.Now())
				t.mu.Unlock()
			}
		}
		h.ServeHTTP(w, r)
	})
}

// accepted is one CopyImage ECS accepted.
type accepted struct {
	at     time.Time
	source string
	image  string // the copy's id in the destination region
}

// recorder keeps the status and body of an answer while passing it on.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Hijack lets the emulator drop connections (its fault injection) through
// the recorder.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	return hj.Hijack()
}
