// Package metrics is replicatord's Prometheus instrumentation: one Metrics
// value owning its own prometheus.Registry (never the global one, so tests
// and embedded uses do not collide), with typed methods for the engine to
// call and an HTTP handler/server that exposes /metrics.
//
// Everything is named replicatord_*. Labels carry only bounded,
// non-secret values: region ids, policy names, job states, ECS action names
// and ECS error codes (sanitised and length-capped, since they come from
// the wire). Access keys, tokens, image names and job ids never become
// labels.
//
// Job counts are not kept as gauges that the scheduler must remember to
// increment and decrement: the scheduler registers a JobSource callback and
// the collector asks it at scrape time, so the numbers cannot drift from
// the store and a state that empties disappears instead of lingering.
// Everything else is a counter, gauge or histogram set on the event.
//
// All methods are safe for concurrent use and safe on a nil *Metrics, which
// does nothing: components take an optional *Metrics without nil checks.
package metrics
