package main

import (
	"io"
	"strconv"
	"strings"
)

// ANSI sequences used by the live view. Only the basic VT100 set, which
// every terminal emulator understands.
const (
	ansiHideCursor = "\x1b[?25l"
	ansiShowCursor = "\x1b[?25h"
	ansiClearEOL   = "\x1b[K"
	ansiClearEOS   = "\x1b[J"
)

// liveScreen redraws a frame in place: it moves the cursor up over the
// previous frame and overwrites it line by line, clearing only what is left
// of each line, all in one write, so the terminal never shows a blank frame.
type liveScreen struct {
	w      io.Writer
	prev   []string
	drawn  bool
	closed bool
}

// draw replaces the previous frame with lines. An unchanged frame is not
// written again.
func (s *liveScreen) draw(lines []string) error {
	if s.drawn && equalLines(s.prev, lines) {
		return nil
	}
	var b strings.Builder
	if !s.drawn {
		b.WriteString(ansiHideCursor)
	}
	if n := len(s.prev); n > 0 {
		b.WriteString("\x1b[" + strconv.Itoa(n) + "A")
	}
	for _, l := range lines {
		// \r first: the terminal may not turn \n into \r\n (ONLCR off).
		b.WriteString("\r" + l + ansiClearEOL + "\n")
	}
	b.WriteString("\r" + ansiClearEOS)
	s.prev = append(s.prev[:0], lines...)
	s.drawn = true
	_, err := io.WriteString(s.w, b.String())
	return err
}

// close leaves the final frame on screen and restores the cursor.
func (s *liveScreen) close() error {
	if s.closed || !s.drawn {
		return nil
	}
	s.closed = true
	_, err := io.WriteString(s.w, ansiShowCursor)
	return err
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
