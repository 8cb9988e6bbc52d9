package main

import (
	"fmt"
	"io"

	"github.com/replicatord/replicatord/internal/state"
)

// compactState shrinks a state file offline (state.Compact): after
// daemon.job_retention has removed finished jobs, the freed pages are
// reused but the file keeps its size until it is compacted.
func compactState(path string, stdout, stderr io.Writer) int {
	before, after, err := state.Compact(path)
	if err != nil {
		fmt.Fprintf(stderr, "replicatord: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "%s: compacted from %s to %s\n", path, sizeString(before), sizeString(after))
	return exitOK
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
