// Package metrics is replicatord's Prometheus instrumentation: one Metrics
// value owning its own prometheus.Registry (never the global one, so tests
// and embedded uses do not collide), with typed methods for the engine to
// call and an HTTP server that exposes /metrics and the probes /healthz
// (liveness: the process answers) and /readyz (readiness: what
// SetReadiness reports, the daemon's gRPC health status).
//
// Everything is named replicatord_*, except the standard grpc_server_*
// metrics of go-grpc-middleware's Prometheus provider (GRPCServerOptions,
// InitGRPC), which the usual gRPC dashboards expect. Labels carry only
// bounded, non-secret values: region ids, policy names, job states, ECS
// action names and ECS error codes (sanitised and length-capped, since they
// come from the wire). Access keys, tokens, image names and job ids never
// become labels.
//
// Alerts take increase() of counters, and a counter that first appears at
// 1 has no increase: the first failure would be missed. So every series
// with a known label set exists at zero from the start: every legal job
// transition (New), and, through Preset, the calls and throttles of every
// ECS action the daemon sends, the runs and errors of every loaded policy,
// the copy-duration histogram of every policy route, and the queue, slot
// and overdue gauges of every destination region. Preset runs again after
// a reload and drops the series of removed policies, so that "policy
// stopped running" (last-run timestamp against the policy's interval)
// never fires for a policy removed on purpose.
//
// Job counts and overdue copies are not kept as gauges that the scheduler
// must remember to update: the scheduler registers a JobSource callback
// and the collector asks it at scrape time, so the numbers cannot drift
// from the store and a state that empties disappears instead of
// lingering. Everything else is a counter, gauge or histogram set on the
// event.
//
// All methods are safe for concurrent use and safe on a nil *Metrics, which
// does nothing: components take an optional *Metrics without nil checks.
package metrics
