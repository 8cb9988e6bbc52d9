//go:build !linux

package main

import "os"

// stdoutTerm on platforms other than Linux reports "not a terminal", so
// replctl prints plain lines instead of the live view there.
func stdoutTerm(*os.File) termInfo { return termInfo{} }
