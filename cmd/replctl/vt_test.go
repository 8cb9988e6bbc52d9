package main

import (
	"strconv"
	"strings"
	"testing"
)

// vtScreen is the smallest terminal emulator that can replay replctl's live
// view: printable text, CR, LF, cursor up (CSI n A), erase to end of line
// (CSI K), erase line (CSI 2K), erase below (CSI J) and private modes (CSI ?
// 25 l/h), which it ignores. Anything else is an error, so the test notices
// if the view starts using sequences it does not model.
type vtScreen struct {
	rows     [][]rune
	row, col int
	cursorOn bool
}

func newVTScreen() *vtScreen { return &vtScreen{cursorOn: true} }

func (s *vtScreen) line() []rune {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
	return s.rows[s.row]
}

func (s *vtScreen) feed(t *testing.T, data string) {
	t.Helper()
	r := []rune(data)
	for i := 0; i < len(r); i++ {
		switch c := r[i]; {
		case c == '\r':
			s.col = 0
		case c == '\n':
			s.row++
			s.line()
		case c == 0x1b:
			if i+1 >= len(r) || r[i+1] != '[' {
				t.Fatalf("unsupported escape at %d: %q", i, string(r[i:min(i+8, len(r))]))
			}
			j := i + 2
			for j < len(r) && (r[j] == '?' || r[j] == ';' || (r[j] >= '0' && r[j] <= '9')) {
				j++
			}
			if j >= len(r) {
				t.Fatalf("truncated escape sequence %q", string(r[i:]))
			}
			s.csi(t, string(r[i+2:j]), r[j])
			i = j
		case c < 0x20:
			t.Fatalf("unexpected control character %#x", c)
		default:
			l := s.line()
			for len(l) <= s.col {
				l = append(l, ' ')
			}
			l[s.col] = c
			s.rows[s.row] = l
			s.col++
		}
	}
}

func (s *vtScreen) csi(t *testing.T, params string, final rune) {
	t.Helper()
	n := 1
	if params != "" && params[0] != '?' {
		v, err := strconv.Atoi(params)
		if err != nil {
			t.Fatalf("bad CSI params %q", params)
		}
		n = v
	}
	switch {
	case final == 'A':
		s.row = max(0, s.row-n)
	case final == 'K' && (params == "" || params == "0"):
		l := s.line()
		if s.col < len(l) {
			s.rows[s.row] = l[:s.col]
		}
	case final == 'K' && params == "2":
		s.rows[s.row] = nil
	case final == 'J' && (params == "" || params == "0"):
		l := s.line()
		if s.col < len(l) {
			s.rows[s.row] = l[:s.col]
		}
		s.rows = s.rows[:s.row+1]
	case params == "?25" && final == 'l':
		s.cursorOn = false
	case params == "?25" && final == 'h':
		s.cursorOn = true
	default:
		t.Fatalf("unsupported CSI %q%c", params, final)
	}
}

// text returns the screen as lines without trailing blanks.
func (s *vtScreen) text() string {
	var lines []string
	for _, l := range s.rows {
		lines = append(lines, strings.TrimRight(string(l), " "))
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

func TestVTScreenRedraw(t *testing.T) {
	var out strings.Builder
	ls := &liveScreen{w: &out}
	_ = ls.draw([]string{"a long first line", "second", "third"})
	_ = ls.draw([]string{"short", "2nd"})
	_ = ls.draw([]string{"short", "2nd"}) // unchanged: nothing written
	n := out.Len()
	_ = ls.draw([]string{"short", "2nd"})
	if out.Len() != n {
		t.Error("an unchanged frame was written again")
	}
	_ = ls.close()
	vt := newVTScreen()
	vt.feed(t, out.String())
	if got := vt.text(); got != "short\n2nd" {
		t.Errorf("screen after redraws:\n%s", got)
	}
	if !vt.cursorOn {
		t.Error("cursor left hidden")
	}
}
