package main

import (
	"runtime"
	"runtime/debug"
)

// buildVersion and buildRevision are set at link time by release and
// image builds:
//
//	go build -ldflags "-X main.buildVersion=v1.2.3 -X main.buildRevision=$(git rev-parse HEAD)"
//
// Without them, the module version of the build (go install ...@v1.2.3)
// and the VCS revision the go command stamped (none with -buildvcs=false)
// are used. replctl takes the same -X main.buildVersion.
var buildVersion, buildRevision string

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// buildInfo returns what replicatord_build_info reports: the version
// --version prints, the Go version and the revision.
func buildInfo() (v, goVersion, rev string) {
	rev = buildRevision
	if bi, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	return version(), runtime.Version(), rev
}
