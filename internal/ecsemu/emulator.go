package ecsemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/replicatord/replicatord/internal/clock"
)

// apiVersion is the only ECS API version emulated.
const apiVersion = "2014-05-26"

// Emulator is an in-memory ECS image API. It is safe for concurrent use.
type Emulator struct {
	clk       clock.Clock
	authClk   clock.Clock
	creds     map[string]string
	slots     int
	fixtures  []FixtureImage
	stateFile string              // "" = in memory only
	catalog   map[string][]*image // public, shared and marketplace images; read-only
	reqSeq    atomic.Uint64
	reqPrefix string

	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex // guards everything below
	cfg      Config     // run-time knobs (rates, shares, rules)
	faults   map[string]Fault
	images   map[string]*image            // by id
	byRegion map[string]map[string]*image // region -> id -> image
	usedIDs  map[string]bool              // every image and snapshot id ever issued
	queues   map[string]*regionQueue
	tokens   map[string]tokenEntry
	sessions map[string]session // STS credentials by access key id
	nonces   map[string]time.Time
	limiters map[string]*rate.Limiter
	// copiesOf counts the copies of each source image made into each
	// region ("source>region"): the n-th one's fate is drawn from it (fate).
	copiesOf map[string]int
	rngCanc  *rand.Rand
	rngFault *rand.Rand
	rngID    *rand.Rand
	counters counters
	hanging  int64 // requests blocked in a hang fault now

	// testHookBlocked, if set, is called when a request starts to block
	// in a hang or latency fault; tests use it instead of sleeping.
	testHookBlocked func(kind string)
}

// tokenEntry remembers a CopyImage ClientToken.
type tokenEntry struct {
	fingerprint string
	imageID     string
}

// New validates cfg and returns an emulator holding cfg.Images. Errors name
// the bad knob.
func New(cfg Config) (*Emulator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		clk:      cfg.Clock,
		authClk:  cfg.AuthClock,
		creds:    cfg.Credentials,
		slots:    cfg.CopySlotsPerRegion,
		fixtures: cfg.Images,
		closed:   make(chan struct{}),
		cfg:      cfg,
		faults:   cfg.Faults,
		rngCanc:  rand.New(rand.NewSource(cfg.Seed + 1)),
		rngFault: rand.New(rand.NewSource(cfg.Seed + 2)),
		rngID:    rand.New(rand.NewSource(cfg.Seed + 3)),
		sessions: map[string]session{},
		catalog:  map[string][]*image{},
	}
	if !cfg.NoCatalog {
		e.catalog = buildCatalog()
	}
	e.reqPrefix = fmt.Sprintf("%08X", uint32(rand.New(rand.NewSource(time.Now().UnixNano())).Int63()))
	e.resetState()
	e.counters.reset()
	if cfg.StateFile != "" {
		e.stateFile = cfg.StateFile
		if err := e.openState(cfg.StateFile); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// resetState drops every image, copy, token and nonce and loads the
// fixtures again. Called with mu held (or before e is shared).
func (e *Emulator) resetState() {
	e.images = map[string]*image{}
	e.byRegion = map[string]map[string]*image{}
	e.usedIDs = map[string]bool{}
	e.queues = map[string]*regionQueue{}
	e.tokens = map[string]tokenEntry{}
	e.nonces = map[string]time.Time{}
	e.limiters = map[string]*rate.Limiter{}
	e.copiesOf = map[string]int{}
	for _, f := range e.fixtures {
		e.loadFixture(f)
	}
}

// loadFixture adds a source image as the fixtures describe it. mu is held.
func (e *Emulator) loadFixture(f FixtureImage) {
	im := &image{
		ID:           f.ID,
		Region:       f.Region,
		Name:         f.Name,
		Description:  f.Description,
		Family:       f.Family,
		SizeGiB:      f.SizeGiB,
		CreationTime: f.CreationTime.UTC(),
		Tags:         map[string]string{},
		fixedStatus:  f.Status,
		os:           guessOS(f.Name),
	}
	for k, v := range f.Tags {
		im.Tags[k] = v
	}
	e.usedIDs[im.ID] = true
	im.Disks = []disk{{SnapshotID: e.newID("s", f.Region), SizeGiB: f.SizeGiB, Device: "/dev/xvda", Type: "system"}}
	e.addImage(im)
}

// AddImage adds a custom image at run time, as if it had just been built
// in its region (a new golden image for a policy to pick up). It is checked
// like a fixture; its id must be unused and its name free in the region.
// A reset with state drops it again.
func (e *Emulator) AddImage(f FixtureImage) error {
	if f.CreationTime.IsZero() {
		f.CreationTime = e.clk.Now().UTC()
	}
	if err := validateFixtures([]FixtureImage{f}); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.usedIDs[f.ID] {
		return fmt.Errorf("image id %s is already used", f.ID)
	}
	for _, im := range e.byRegion[f.Region] {
		if im.Name == f.Name {
			return fmt.Errorf("image name %q is already used in %s", f.Name, f.Region)
		}
	}
	e.loadFixture(f)
	return e.persistLocked()
}

// Close releases requests blocked in hang or latency faults by dropping
// their connections (an empty 200 would read as success). The emulator keeps
// no goroutine of its own, so there is nothing else to stop; later calls
// still work, but hang and latency faults then drop the connection at once.
func (e *Emulator) Close() {
	e.closeOnce.Do(func() { close(e.closed) })
}

// newID returns a fresh ECS-looking id: kind ("m" or "s"), "-", the region's
// three-character prefix and 17 random lowercase letters or digits.
func (e *Emulator) newID(kind, regionID string) string {
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyz"
	prefix := "bp1"
	if r := findRegion(regionID); r != nil {
		prefix = r.idPrefix
	}
	for {
		var b strings.Builder
		b.WriteString(kind + "-" + prefix)
		for i := 0; i < 17; i++ {
			b.WriteByte(alnum[e.rngID.Intn(len(alnum))])
		}
		id := b.String()
		// Ids are never reused, as on ECS.
		if !e.usedIDs[id] {
			e.usedIDs[id] = true
			return id
		}
	}
}

// addImage and removeImage keep the indexes in step.
func (e *Emulator) addImage(im *image) {
	e.images[im.ID] = im
	r := e.byRegion[im.Region]
	if r == nil {
		r = map[string]*image{}
		e.byRegion[im.Region] = r
	}
	r[im.ID] = im
}

func (e *Emulator) removeImage(im *image) {
	delete(e.images, im.ID)
	delete(e.byRegion[im.Region], im.ID)
}

// newRequestID returns a unique, UUID-shaped request id.
func (e *Emulator) newRequestID() string {
	n := e.reqSeq.Add(1)
	return fmt.Sprintf("%s-%04X-4%03X-A%03X-%012X", e.reqPrefix, uint16(n>>48), uint16(n>>36)&0xFFF, uint16(n>>24)&0xFFF, n&0xFFFFFFFFFFFF)
}

// call is one authenticated API request.
type call struct {
	p         params
	now       time.Time // the emulator clock (copy progress)
	authNow   time.Time // the clock Timestamps and STS expiry go by
	rid       string
	accessKey string
}

// outcome is what a request ended as, for the counters.
type outcome struct {
	action string
	code   string // "200" on success, else the error code or a fault name
}

// ServeHTTP serves the ECS API on "/" and the admin API under /_ecsemu/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, adminPrefix) {
		e.serveAdmin(w, r)
		return
	}
	e.serveAPI(w, r, e.newRequestID())
}

// record counts a call. It runs before the answer is written (or the
// connection dropped), so a client that saw the answer sees the count.
func (e *Emulator) record(out outcome) outcome {
	e.mu.Lock()
	e.counters.call(out.action, out.code)
	e.mu.Unlock()
	return out
}

func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request, rid string) outcome {
	out := outcome{action: actionNone}
	// How answers are written; known once the request is parsed.
	ans := answer{host: r.Host, product: "Ecs"}
	fail := func(err *apiError, regionID string) outcome {
		out.code = err.Code
		e.record(out)
		ans.writeError(w, rid, err)
		return out
	}
	if r.URL.Path != "/" {
		return fail(newErr(http.StatusNotFound, "InvalidAction.NotFound", "The path %q is not served; ECS API requests go to /.", truncate(r.URL.Path, 64)), "")
	}
	p, aerr := parseRequest(r)
	if aerr != nil {
		return fail(aerr, "")
	}
	regionID := p.get("RegionId")
	name := p.get("Action")
	ans.xml = strings.EqualFold(p.get("Format"), "XML")
	ans.root = name + "Response"
	if p.get("Version") == stsVersion {
		ans.product = "Sts"
	}
	if name == "" {
		return fail(errMissing("Action"), regionID)
	}
	// STS and ECS share the RPC protocol; the version says which API is meant.
	table := actions
	if p.get("Version") == stsVersion {
		table = stsActions
	}
	handler := table[name]
	if handler != nil {
		out.action = name
	} else {
		out.action = actionUnknown
	}
	c, aerr := e.authenticate(r.Method, p, rid, name == "AssumeRoleWithOIDC")
	if aerr != nil {
		return fail(aerr, regionID)
	}
	if handler == nil {
		// As the API gateway answers (recorded in the Tea SDK's live tests).
		return fail(newErr(http.StatusNotFound, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."), regionID)
	}
	if aerr := e.throttle(name, c.accessKey, c.now); aerr != nil {
		return fail(aerr, regionID)
	}
	f := e.drawFault(name, regionID)
	if f.latency > 0 && !e.wait(r, f.latency) {
		return e.abandon(w, r, out)
	}
	switch f.kind {
	case faultInternal:
		return fail(errInternal, regionID)
	case faultUnavailable:
		return fail(errUnavailable, regionID)
	case faultHang:
		e.hang(r)
		out.code = "Hung"
		e.record(out)
		if r.Context().Err() == nil {
			// Released by Close: an empty 200 would read as success.
			dropConnection(w)
		}
		return out
	case faultDrop:
		out.code = "Dropped"
		e.record(out)
		dropConnection(w)
		return out
	}
	e.mu.Lock()
	c.now = e.clk.Now()
	resp, aerr := handler(e, c)
	if aerr == nil && !readOnly[name] {
		// Durable before answering: a client that saw the answer finds the
		// change after a restart.
		if err := e.persistLocked(); err != nil {
			e.counters.StateErrors++
			aerr = newErr(http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error, exception or failure.")
		}
	}
	e.mu.Unlock()
	if aerr != nil {
		return fail(aerr, regionID)
	}
	out.code = "200"
	e.record(out)
	ans.write(w, http.StatusOK, resp)
	return out
}

// abandon ends a request whose wait was cut short: by the client (nothing
// to answer) or by Close (drop the connection rather than answer 200).
func (e *Emulator) abandon(w http.ResponseWriter, r *http.Request, out outcome) outcome {
	out.code = "ClientClosed"
	if r.Context().Err() == nil {
		out.code = "Dropped"
		e.record(out)
		dropConnection(w)
		return out
	}
	return e.record(out)
}

// authenticate checks signature (with the SecurityToken of STS keys),
// timestamp, nonce and version. An anonymous call (AssumeRoleWithOIDC,
// whose OIDC token is the proof) is checked for timestamp and version only.
func (e *Emulator) authenticate(method string, p params, rid string, anonymous bool) (*call, *apiError) {
	now := e.clk.Now()
	if e.authClk != nil {
		now = e.authClk.Now()
	}
	if anonymous {
		if ts := p.get("Timestamp"); ts != "" {
			if _, aerr := checkTimestamp(ts, now); aerr != nil {
				return nil, aerr
			}
		}
		if aerr := checkVersion(p); aerr != nil {
			return nil, aerr
		}
		return &call{p: p, now: now, authNow: now, rid: rid}, nil
	}
	if aerr := checkCommon(p); aerr != nil {
		return nil, aerr
	}
	e.mu.Lock()
	secret, aerr := e.lookupKey(p.get("AccessKeyId"), p.get("SecurityToken"), now)
	e.mu.Unlock()
	if aerr != nil {
		return nil, aerr
	}
	if aerr := verifySignature(method, p, secret); aerr != nil {
		return nil, aerr
	}
	ts, aerr := checkTimestamp(p.get("Timestamp"), now)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkVersion(p); aerr != nil {
		return nil, aerr
	}
	key := p.get("AccessKeyId") + "\x00" + p.get("SignatureNonce")
	e.mu.Lock()
	defer e.mu.Unlock()
	if exp, used := e.nonces[key]; used && now.Before(exp) {
		return nil, newErr(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
	}
	// A nonce can only be replayed while its timestamp is accepted.
	e.nonces[key] = ts.Add(timestampSkew)
	if len(e.nonces)%4096 == 0 {
		for k, exp := range e.nonces {
			if !now.Before(exp) {
				delete(e.nonces, k)
			}
		}
	}
	return &call{p: p, now: now, authNow: now, rid: rid, accessKey: p.get("AccessKeyId")}, nil
}

// checkVersion accepts the two emulated API versions.
func checkVersion(p params) *apiError {
	switch v := p.get("Version"); v {
	case "":
		return errMissing("Version")
	case apiVersion, stsVersion:
		return nil
	default:
		return newErr(http.StatusBadRequest, "InvalidParameter", "Specified parameter Version %q is not valid; this endpoint serves ECS %s and STS %s.", truncate(v, 32), apiVersion, stsVersion)
	}
}

// throttle takes a token from the bucket of this action and access key.
func (e *Emulator) throttle(action, accessKey string, now time.Time) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg.ThrottleRate < 0 {
		return nil
	}
	key := action + "\x00" + accessKey
	lim := e.limiters[key]
	if lim == nil {
		burst := e.cfg.ThrottleBurst
		if burst == 0 {
			burst = max(int(e.cfg.ThrottleRate), 1)
		}
		lim = rate.NewLimiter(rate.Limit(e.cfg.ThrottleRate/60), burst)
		// A new bucket starts full at the clock's time, not the wall clock's.
		lim.SetLimitAt(now, rate.Limit(e.cfg.ThrottleRate/60))
		e.limiters[key] = lim
	}
	if lim.AllowN(now, 1) {
		return nil
	}
	e.counters.Throttled++
	msg := "Request was denied due to user flow control."
	if e.cfg.ThrottleCode == "Throttling" {
		msg = "Request was denied due to request throttling."
	}
	aerr := newErr(http.StatusBadRequest, e.cfg.ThrottleCode, "%s", msg)
	// The time until the bucket holds a token again.
	if r := float64(lim.Limit()); r > 0 {
		aerr.RetryAfter = time.Duration((1 - lim.TokensAt(now)) / r * float64(time.Second))
	}
	return aerr
}

// answer is how a request's answers are written: JSON (the default) or
// XML as Format asks, with the HostId of the endpoint the client called
// (its Host header), as the gateway answers.
type answer struct {
	host, product, root string
	xml                 bool
}

func (a answer) hostID() string {
	if a.host == "" {
		return "ecs.aliyuncs.com"
	}
	return a.host
}

func (a answer) writeError(w http.ResponseWriter, rid string, err *apiError) {
	if err.RetryAfter > 0 {
		// Milliseconds, as the Darabonba clients read it.
		w.Header().Set("x-acs-retry-after", strconv.FormatInt(int64((err.RetryAfter+time.Millisecond-1)/time.Millisecond), 10))
	}
	body := errorBody{
		RequestId: rid,
		HostId:    a.hostID(),
		Code:      err.Code,
		Message:   err.Message,
		Recommend: "https://api.aliyun.com/troubleshoot?q=" + err.Code + "&product=" + a.product + "&requestId=" + rid,
	}
	if a.xml {
		a.root = "Error"
	}
	a.write(w, err.Status, body)
}

func (a answer) write(w http.ResponseWriter, status int, v any) {
	if !a.xml {
		writeJSON(w, status, v)
		return
	}
	data, err := json.Marshal(v)
	var out []byte
	if err == nil {
		out, err = jsonToXML(a.root, data)
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{HostId: a.hostID(), Code: "InternalError", Message: "response encoding failed"})
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Recommend URLs keep their '&'
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"RequestId":"","HostId":"ecs.aliyuncs.com","Code":"InternalError","Message":"response encoding failed","Recommend":""}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
