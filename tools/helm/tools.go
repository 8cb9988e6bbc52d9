//go:build tools

// Package helmtool pins helm for `make chart-check` (helm lint and helm
// template of deploy/helm/replicatord). It is a module of its own so that
// helm's Kubernetes dependencies stay out of the main go.mod and out of
// tools/go.mod, and cannot raise the versions either of them builds with.
package helmtool

import _ "helm.sh/helm/v3/cmd/helm"
