//go:build linux

package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestNoCoreDumps(t *testing.T) {
	if err := noCoreDumps(); err != nil {
		t.Fatal(err)
	}
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || v != 0 {
		t.Errorf("PR_GET_DUMPABLE = %d, %v; want 0", v, err)
	}
}
