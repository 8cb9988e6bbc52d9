//go:build linux

package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// noCoreDumps makes the process non-dumpable: no core file (it would hold
// the access key secret), and no ptrace or /proc/<pid>/mem access by other
// processes of the same user.
func noCoreDumps() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

// reexec replaces the process with a fresh copy of itself with env: the
// SDK reads DEBUG when its packages are initialised, before main runs, so
// removing it takes a new process.
func reexec(env []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, env)
}
