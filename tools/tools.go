//go:build tools

// Package tools pins the code generators used by buf.gen.yaml, so that
// `go install` from this module builds exactly the versions CI checks against.
// They live in their own module to keep the main go.mod free of them.
package tools

import (
	_ "github.com/fzipp/gocyclo/cmd/gocyclo"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
