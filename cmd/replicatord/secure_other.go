//go:build !linux

package main

import "errors"

// noCoreDumps has no portable equivalent; the service unit's LimitCORE=0
// (or the platform's own settings) must do.
func noCoreDumps() error { return nil }

// reexec is not available here: the daemon refuses to start instead.
func reexec([]string) error {
	return errors.New("cannot restart without it on this platform; unset it and start again")
}
