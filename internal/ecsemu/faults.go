package ecsemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

type faultKind int

const (
	faultNone faultKind = iota
	faultInternal
	faultUnavailable
	faultHang
	faultDrop
)

type faultDraw struct {
	kind    faultKind
	latency time.Duration
}

// faultFor returns the fault of an action in a region: the entry
// "Action@region" (one region's calls only, e.g. to fail one destination's
// DescribeImages), else the action's own entry, else "*". Called with mu
// held.
func (e *Emulator) faultFor(action, region string) Fault {
	if f, ok := e.faults[action+"@"+region]; ok && region != "" {
		return f
	}
	if f, ok := e.faults[action]; ok {
		return f
	}
	return e.faults["*"]
}

// drawFault decides, with one seeded draw, whether this call fails. Calls
// of actions without a fault draw nothing, so they do not shift the
// sequence of the others.
func (e *Emulator) drawFault(action, region string) faultDraw {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.faultFor(action, region)
	d := faultDraw{latency: f.Latency}
	if f.InternalErrorRate+f.UnavailableRate+f.HangRate+f.DropRate == 0 {
		return d
	}
	x := e.rngFault.Float64()
	name := ""
	switch {
	case x < f.InternalErrorRate:
		d.kind, name = faultInternal, "InternalError"
	case x < f.InternalErrorRate+f.UnavailableRate:
		d.kind, name = faultUnavailable, "ServiceUnavailable"
	case x < f.InternalErrorRate+f.UnavailableRate+f.HangRate:
		d.kind, name = faultHang, "Hang"
	case x < f.InternalErrorRate+f.UnavailableRate+f.HangRate+f.DropRate:
		d.kind, name = faultDrop, "Drop"
	}
	if name != "" {
		e.counters.fault(action, name)
	}
	return d
}

// SetFaults replaces the fault of an action ("*" = every action without
// its own; "Action@region" = that action's calls in one region only). A zero Fault removes it. Rates are clamped to 0..1 and scaled
// down if they sum above 1; a negative latency counts as none. Unknown
// action names are kept and simply never match.
func (e *Emulator) SetFaults(action string, f Fault) {
	f = clampFault(f)
	e.mu.Lock()
	defer e.mu.Unlock()
	faults := make(map[string]Fault, len(e.faults)+1)
	for k, v := range e.faults {
		faults[k] = v
	}
	if f.zero() {
		delete(faults, action)
	} else {
		faults[action] = f
	}
	e.faults = faults
}

// Faults returns a copy of the faults in force.
func (e *Emulator) Faults() map[string]Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Fault, len(e.faults))
	for k, v := range e.faults {
		out[k] = v
	}
	return out
}

func clampFault(f Fault) Fault {
	c := func(v float64) float64 {
		if badFloat(v) || v < 0 {
			return 0
		}
		return min(v, 1)
	}
	f.InternalErrorRate, f.UnavailableRate, f.HangRate, f.DropRate = c(f.InternalErrorRate), c(f.UnavailableRate), c(f.HangRate), c(f.DropRate)
	if sum := f.InternalErrorRate + f.UnavailableRate + f.HangRate + f.DropRate; sum > 1 {
		f.InternalErrorRate /= sum
		f.UnavailableRate /= sum
		f.HangRate /= sum
		f.DropRate /= sum
	}
	f.Latency = max(f.Latency, 0)
	return f
}

// wait blocks for d on the emulator's clock; false if the client went
// away or the emulator closed first.
func (e *Emulator) wait(r *http.Request, d time.Duration) bool {
	t := e.clk.NewTimer(d)
	defer t.Stop()
	e.blocked("latency")
	select {
	case <-t.C():
		return true
	case <-r.Context().Done():
		return false
	case <-e.closed:
		return false
	}
}

// hang blocks until the client gives up or the emulator closes; the
// client sees no answer at all.
func (e *Emulator) hang(r *http.Request) {
	e.mu.Lock()
	e.hanging++
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.hanging--
		e.mu.Unlock()
	}()
	e.blocked("hang")
	select {
	case <-r.Context().Done():
	case <-e.closed:
	}
}

// dropConnection closes the TCP connection without an answer.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 or a recorder: aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// faultJSON is Fault on the wire: latency as a Go duration string.
type faultJSON struct {
	InternalErrorRate float64 `json:"internalErrorRate"`
	UnavailableRate   float64 `json:"unavailableRate"`
	HangRate          float64 `json:"hangRate"`
	DropRate          float64 `json:"dropRate"`
	Latency           string  `json:"latency"`
}

// MarshalJSON writes latency as a duration string such as "250ms".
func (f Fault) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultJSON{f.InternalErrorRate, f.UnavailableRate, f.HangRate, f.DropRate, f.Latency.String()})
}

// UnmarshalJSON reads latency as a duration string ("250ms") and refuses
// unknown fields.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := strictJSON(b, &j); err != nil {
		return err
	}
	var lat time.Duration
	if j.Latency != "" {
		var err error
		if lat, err = time.ParseDuration(j.Latency); err != nil {
			return fmt.Errorf("latency: %q is not a duration such as \"250ms\"", j.Latency)
		}
	}
	*f = Fault{j.InternalErrorRate, j.UnavailableRate, j.HangRate, j.DropRate, lat}
	return nil
}

func (e *Emulator) blocked(kind string) {
	e.mu.Lock()
	hook := e.testHookBlocked
	e.mu.Unlock()
	if hook != nil {
		hook(kind)
	}
}
