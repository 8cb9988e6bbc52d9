//go:build !linux

package state

// releaseMappings is a no-op where /proc/self/maps does not exist: after a
// bbolt panic in Open, the same process may then be unable to reopen the
// file.
func releaseMappings(string) {}
