package main

import (
	"os"

	"golang.org/x/term"
)

// stdoutTerm reports whether f is a terminal and its size, on every
// platform x/term supports (Linux, macOS, the BSDs, Windows consoles). A
// terminal whose size cannot be read is taken as 80x24.
func stdoutTerm(f *os.File) termInfo {
	fd := int(f.Fd())
	if !term.IsTerminal(fd) {
		return termInfo{}
	}
	ti := termInfo{tty: true, width: 80, height: 24}
	if w, h, err := term.GetSize(fd); err == nil && w > 0 {
		ti.width, ti.height = w, h
	}
	return ti
}
