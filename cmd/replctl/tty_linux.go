//go:build linux

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// stdoutTerm reports whether f is a terminal and its size. It uses the
// termios/winsize ioctls directly (x/sys is already a dependency) rather than
// pulling in x/term for two calls.
func stdoutTerm(f *os.File) termInfo {
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return termInfo{}
	}
	ti := termInfo{tty: true, width: 80, height: 24}
	if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		ti.width, ti.height = int(ws.Col), int(ws.Row)
	}
	return ti
}
