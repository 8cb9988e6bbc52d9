package ecsemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// adminPrefix is the reserved path of the admin API. It needs no signature:
// the emulator is a test tool bound to loopback by default.
const adminPrefix = "/_ecsemu/"

const maxAdminBody = 64 << 10

// serveAdmin routes the admin API:
//
//	GET    /_ecsemu/stats           counters and state summary (Stats)
//	GET    /_ecsemu/faults          faults in force, by action
//	PUT    /_ecsemu/faults          {"action":"CopyImage","fault":{"internalErrorRate":0.2,"latency":"50ms"}}
//	                                ("action":"DescribeImages@cn-beijing" = that region's calls only)
//	DELETE /_ecsemu/faults          remove every fault
//	GET    /_ecsemu/config          run-time knobs
//	PUT    /_ecsemu/config          change some run-time knobs (fields left out stay)
//	POST   /_ecsemu/reset           zero the counters; ?state=true also restores the fixture images
//	GET    /_ecsemu/images          every image of the account with its status (?region= to filter; not the catalogue)
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + r.URL.Path
	switch route {
	case "GET /_ecsemu/stats":
		writeJSON(w, http.StatusOK, e.Stats())
	case "GET /_ecsemu/faults":
		writeJSON(w, http.StatusOK, e.Faults())
	case "PUT /_ecsemu/faults", "POST /_ecsemu/faults":
		e.adminSetFault(w, r)
	case "DELETE /_ecsemu/faults":
		e.mu.Lock()
		e.faults = map[string]Fault{}
		e.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]Fault{})
	case "GET /_ecsemu/config":
		e.mu.Lock()
		view := runtimeView(e.cfg)
		e.mu.Unlock()
		writeJSON(w, http.StatusOK, view)
	case "PUT /_ecsemu/config", "PATCH /_ecsemu/config":
		e.adminPatchConfig(w, r)
	case "POST /_ecsemu/reset":
		e.adminReset(w, r)
	case "GET /_ecsemu/images":
		writeJSON(w, http.StatusOK, e.adminImages(r.URL.Query().Get("region")))
	case "POST /_ecsemu/images":
		e.adminAddImage(w, r)
	default:
		adminError(w, http.StatusNotFound, fmt.Sprintf("no admin endpoint %s; see GET /_ecsemu/stats, GET|PUT|DELETE /_ecsemu/faults, GET|PUT /_ecsemu/config, POST /_ecsemu/reset, GET|POST /_ecsemu/images", truncate(route, 80)))
	}
}

// adminSetFault sets the fault of one action (or "*"); {} removes it.
func (e *Emulator) adminSetFault(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Action string `json:"action"`
		Fault  *Fault `json:"fault"`
	}
	if err := readJSON(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Action == "" {
		adminError(w, http.StatusBadRequest, `"action" is required: an action name or "*"`)
		return
	}
	if msg := faultKeyProblem(req.Action); msg != "" {
		adminError(w, http.StatusBadRequest, msg)
		return
	}
	if req.Fault == nil {
		adminError(w, http.StatusBadRequest, `"fault" is required; {} removes the fault`)
		return
	}
	if err := req.Fault.Validate(); err != nil {
		adminError(w, http.StatusBadRequest, "fault: "+err.Error())
		return
	}
	e.SetFaults(req.Action, *req.Fault)
	writeJSON(w, http.StatusOK, e.Faults())
}

// adminPatchConfig changes the run-time knobs the patch names.
func (e *Emulator) adminPatchConfig(w http.ResponseWriter, r *http.Request) {
	var patch runtimePatch
	if err := readJSON(r, &patch); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	view, err := e.applyPatch(patch)
	if err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// adminReset zeroes the counters and, with ?state=true, restores the
// fixture images (and writes the state file).
func (e *Emulator) adminReset(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if state != "" && state != "true" && state != "false" {
		adminError(w, http.StatusBadRequest, fmt.Sprintf("state=%q is not true or false", truncate(state, 16)))
		return
	}
	e.mu.Lock()
	e.counters.reset()
	var err error
	if state == "true" {
		e.resetState()
		err = e.persistLocked()
	}
	e.mu.Unlock()
	if err != nil {
		adminError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"reset": true, "state": state == "true"})
}

// adminAddImage adds one fixture image.
func (e *Emulator) adminAddImage(w http.ResponseWriter, r *http.Request) {
	var f FixtureImage
	if err := readJSON(r, &f); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := e.AddImage(f); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"added": f.ID})
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// readJSON decodes one JSON value from the body, refusing unknown fields,
// trailing data and bodies over 64 KiB.
func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return fmt.Errorf("reading body: %v", err)
	}
	if len(body) > maxAdminBody {
		return fmt.Errorf("body is larger than %d bytes", maxAdminBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("body is empty; want a JSON object")
	}
	return strictJSON(body, v)
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON: %v", err)
	}
	if dec.More() {
		return errors.New("bad JSON: data after the object")
	}
	return nil
}

// runtimeConfig is the run-time view of the knobs that PUT /_ecsemu/config
// may change. Changes apply to copies submitted afterwards.
type runtimeConfig struct {
	TimeScale              float64            `json:"timeScale"`
	DefaultRateMiBps       float64            `json:"defaultRateMiBps"`
	RouteRates             map[string]float64 `json:"routeRates"`
	StartupDelay           string             `json:"startupDelay"`
	MaxImageSizeGiB        int64              `json:"maxImageSizeGiB"`
	ImageQuotaPerRegion    int                `json:"imageQuotaPerRegion"`
	ComplianceRule         string             `json:"complianceRule"`
	DeniedRoutes           []string           `json:"deniedRoutes"`
	CopyConflict           bool               `json:"copyConflict"`
	CreateFailedRate       float64            `json:"createFailedRate"`
	CancelNotSupportedRate float64            `json:"cancelNotSupportedRate"`
	ThrottleRate           float64            `json:"throttleRate"`
	ThrottleCode           string             `json:"throttleCode"`
	ThrottleBurst          int                `json:"throttleBurst"`
	CopySlotsPerRegion     int                `json:"copySlotsPerRegion"` // read-only
}

// runtimePatch is runtimeConfig with every field optional.
type runtimePatch struct {
	TimeScale              *float64            `json:"timeScale"`
	DefaultRateMiBps       *float64            `json:"defaultRateMiBps"`
	RouteRates             *map[string]float64 `json:"routeRates"`
	StartupDelay           *string             `json:"startupDelay"`
	MaxImageSizeGiB        *int64              `json:"maxImageSizeGiB"`
	ImageQuotaPerRegion    *int                `json:"imageQuotaPerRegion"`
	ComplianceRule         *string             `json:"complianceRule"`
	DeniedRoutes           *[]string           `json:"deniedRoutes"`
	CopyConflict           *bool               `json:"copyConflict"`
	CreateFailedRate       *float64            `json:"createFailedRate"`
	CancelNotSupportedRate *float64            `json:"cancelNotSupportedRate"`
	ThrottleRate           *float64            `json:"throttleRate"`
	ThrottleCode           *string             `json:"throttleCode"`
	ThrottleBurst          *int                `json:"throttleBurst"`
}

func runtimeView(c Config) runtimeConfig {
	return runtimeConfig{
		TimeScale: c.TimeScale, DefaultRateMiBps: c.DefaultRateMiBps, RouteRates: copyMap(c.RouteRates),
		StartupDelay: c.StartupDelay.String(), MaxImageSizeGiB: c.MaxImageSizeGiB, ImageQuotaPerRegion: c.ImageQuotaPerRegion,
		ComplianceRule: c.ComplianceRule, DeniedRoutes: append([]string{}, c.DeniedRoutes...), CopyConflict: c.CopyConflict,
		CreateFailedRate: c.CreateFailedRate, CancelNotSupportedRate: c.CancelNotSupportedRate,
		ThrottleRate: c.ThrottleRate, ThrottleCode: c.ThrottleCode, ThrottleBurst: c.ThrottleBurst, CopySlotsPerRegion: c.CopySlotsPerRegion,
	}
}

// applyPatch validates the patched config as New would and installs it.
func (e *Emulator) applyPatch(p runtimePatch) (runtimeConfig, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.cfg
	set := func(dst *float64, src *float64) {
		if src != nil {
			*dst = *src
		}
	}
	set(&c.TimeScale, p.TimeScale)
	set(&c.DefaultRateMiBps, p.DefaultRateMiBps)
	set(&c.CreateFailedRate, p.CreateFailedRate)
	set(&c.CancelNotSupportedRate, p.CancelNotSupportedRate)
	set(&c.ThrottleRate, p.ThrottleRate)
	if p.RouteRates != nil {
		c.RouteRates = *p.RouteRates
	}
	if p.StartupDelay != nil {
		d, err := time.ParseDuration(*p.StartupDelay)
		if err != nil {
			return runtimeConfig{}, fmt.Errorf("startupDelay: %q is not a duration such as \"30s\"", truncate(*p.StartupDelay, 32))
		}
		c.StartupDelay = d
	}
	if p.MaxImageSizeGiB != nil {
		c.MaxImageSizeGiB = *p.MaxImageSizeGiB
	}
	if p.ImageQuotaPerRegion != nil {
		c.ImageQuotaPerRegion = *p.ImageQuotaPerRegion
	}
	if p.ComplianceRule != nil {
		c.ComplianceRule = *p.ComplianceRule
	}
	if p.DeniedRoutes != nil {
		c.DeniedRoutes = *p.DeniedRoutes
	}
	if p.CopyConflict != nil {
		c.CopyConflict = *p.CopyConflict
	}
	if p.ThrottleCode != nil {
		c.ThrottleCode = *p.ThrottleCode
	}
	if p.ThrottleBurst != nil {
		c.ThrottleBurst = *p.ThrottleBurst
	}
	// Faults live in e.faults (SetFaults may hold names New would refuse)
	// and images were validated by New: neither is checked again.
	c.Faults, c.Images = nil, []FixtureImage{}
	checked, err := c.withDefaults()
	if err != nil {
		return runtimeConfig{}, err
	}
	checked.Faults, checked.Images = e.cfg.Faults, e.cfg.Images
	if checked.ThrottleRate != e.cfg.ThrottleRate || checked.ThrottleBurst != e.cfg.ThrottleBurst {
		e.limiters = map[string]*rate.Limiter{}
	}
	e.cfg = checked
	return runtimeView(checked), nil
}

// adminImage is the admin view of an image.
type adminImage struct {
	Region string `json:"region"`
	// SharedWith lists the accounts the image is shared with.
	SharedWith []string `json:"sharedWith,omitempty"`
	imageJSON
}

func (e *Emulator) adminImages(regionID string) []adminImage {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clk.Now()
	out := []adminImage{}
	for _, im := range e.images {
		if regionID == "" || im.Region == regionID {
			a := adminImage{Region: im.Region, imageJSON: im.render(now)}
			for acct := range im.shared {
				a.SharedWith = append(a.SharedWith, acct)
			}
			sort.Strings(a.SharedWith)
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Region != out[j].Region {
			return out[i].Region < out[j].Region
		}
		return out[i].ImageId < out[j].ImageId
	})
	return out
}

// faultKeyProblem explains what is wrong with a fault's key ("*", an
// action, or "Action@region"), or returns "".
func faultKeyProblem(key string) string {
	if key == "*" {
		return ""
	}
	action, region, scoped := strings.Cut(key, "@")
	if actions[action] == nil {
		return fmt.Sprintf("action %q is not emulated; one of %v, \"*\", or Action@region", truncate(action, 64), Actions())
	}
	if scoped && findRegion(region) == nil {
		return fmt.Sprintf("region %q of fault %q is not emulated", truncate(region, 64), truncate(key, 80))
	}
	return ""
}
