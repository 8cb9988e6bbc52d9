package main

import (
	"container/heap"
	"time"
)

// This file is a small discrete-event model of ECS, used to run the
// Terraform and Packer patterns over the same fleet. It shares no code with
// internal/ecsemu on purpose: it is a second, deliberately simple reading of
// the same rules, so that a bug in one does not hide in the other.
//
// The model:
//   - Each destination region runs copies first come, first served on
//     `slots` slots: a copy submitted at t starts at max(t, the time the
//     first slot frees) and holds that slot for its duration (start-up plus
//     size / rate, exactly fleet.duration). Copies never fail.
//   - Status at t is Waiting before the start, Creating until the end,
//     Available after.
//   - Flow control: a token bucket per action (capacity `burst`, refilled at
//     `perMinute`/60 tokens a second, full at the start). A call finding the
//     bucket empty is answered Throttling and changes nothing.
//   - With the copy-conflict rule, CopyImage of a source that has a copy not
//     yet finished in any region is refused (OperationDenied.ImageCopyConflict).
//   - Calls take no time unless the tool's model says so.

// sim is an event queue over emulated time.
type sim struct {
	now time.Duration
	seq uint64
	q   eventHeap
}

type event struct {
	at  time.Duration
	seq uint64 // FIFO among events at the same time: deterministic
	fn  func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// at runs fn at time t (never before now).
func (s *sim) at(t time.Duration, fn func()) {
	s.seq++
	heap.Push(&s.q, event{at: max(t, s.now), seq: s.seq, fn: fn})
}

// run processes events in time order until none is left.
func (s *sim) run() {
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(event)
		s.now = e.at
		e.fn()
	}
}

// Answer codes of the model.
const (
	codeOK       = "200"
	codeThrottle = "Throttling.User"
	codeConflict = "OperationDenied.ImageCopyConflict"
)

// bucket is a token bucket that starts full.
type bucket struct {
	tokens, burst, perSec float64
	last                  time.Duration
}

func (b *bucket) take(now time.Duration) bool {
	b.tokens = min(b.burst, b.tokens+(now-b.last).Seconds()*b.perSec)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// modelCopy is one copy in the model.
type modelCopy struct {
	region, source    string
	start, end, added time.Duration
}

func (c *modelCopy) status(now time.Duration) string {
	switch {
	case now < c.start:
		return "Waiting"
	case now < c.end:
		return "Creating"
	}
	return "Available"
}

// ecsModel is the modeled ECS.
type ecsModel struct {
	s       *sim
	f       *fleet
	free    map[string][]time.Duration // per region: when each slot frees
	buckets map[string]*bucket
	burst   float64
	perSec  float64
	// busyUntil is, per source image, when its last copy ends (copy-conflict).
	busyUntil map[string]time.Duration
	calls     map[string]map[string]int64
	copies    []*modelCopy
}

func newECSModel(s *sim, f *fleet, perMinute float64) *ecsModel {
	return &ecsModel{
		s: s, f: f, free: map[string][]time.Duration{}, buckets: map[string]*bucket{},
		burst: perMinute, perSec: perMinute / 60,
		busyUntil: map[string]time.Duration{}, calls: map[string]map[string]int64{},
	}
}

// admit runs the flow control of one call of action and counts it.
func (m *ecsModel) admit(action string) bool {
	b := m.buckets[action]
	if b == nil {
		b = &bucket{tokens: m.burst, burst: m.burst, perSec: m.perSec, last: m.s.now}
		m.buckets[action] = b
	}
	if !b.take(m.s.now) {
		m.count(action, codeThrottle)
		return false
	}
	return true
}

func (m *ecsModel) count(action, code string) {
	if m.calls[action] == nil {
		m.calls[action] = map[string]int64{}
	}
	m.calls[action][code]++
}

// copyImage answers CopyImage now: the copy, or the error code.
func (m *ecsModel) copyImage(im fleetImage, region string) (*modelCopy, string) {
	if !m.admit("CopyImage") {
		return nil, codeThrottle
	}
	now := m.s.now
	if m.f.CopyConflict && m.busyUntil[im.ID] > now {
		m.count("CopyImage", codeConflict)
		return nil, codeConflict
	}
	m.count("CopyImage", codeOK)
	slots := m.free[region]
	if slots == nil {
		slots = make([]time.Duration, m.f.Slots)
		m.free[region] = slots
	}
	first := 0
	for i := range slots {
		if slots[i] < slots[first] {
			first = i
		}
	}
	start := max(now, slots[first])
	c := &modelCopy{region: region, source: im.ID, added: now, start: start, end: start + m.f.duration(im.SizeGiB)}
	slots[first] = c.end
	m.busyUntil[im.ID] = max(m.busyUntil[im.ID], c.end)
	m.copies = append(m.copies, c)
	return c, codeOK
}

// describe answers a DescribeImages of one copy now: its status, or
// ok=false when throttled.
func (m *ecsModel) describe(c *modelCopy) (status string, ok bool) {
	if !m.admit("DescribeImages") {
		return "", false
	}
	m.count("DescribeImages", codeOK)
	return c.status(m.s.now), true
}
