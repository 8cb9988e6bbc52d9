//go:build tools

// Package promtool pins Prometheus's promtool for `make rules-check`
// (promtool check rules and promtool test rules of deploy/prometheus). It
// is a module of its own: Prometheus's service-discovery dependencies
// (cloud SDKs, Kubernetes) must not reach the main go.mod, and helm's
// Kubernetes versions (tools/helm) need not agree with Prometheus's.
package promtool

import _ "github.com/prometheus/prometheus/cmd/promtool"
