package input

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	if got := Clip("cn-hangzhou"); got != "cn-hangzhou" {
		t.Errorf("short value changed: %q", got)
	}
	long := strings.Repeat("a", 1<<20)
	got := Clip(long)
	if len(got) > MaxEcho+32 || !strings.HasSuffix(got, "…(1048576 bytes)") {
		t.Errorf("1 MiB value clipped to %d bytes: %q", len(got), got[len(got)-40:])
	}
	// Cut on a character boundary, never inside a multi-byte rune.
	multi := strings.Repeat("é", 300) // 2 bytes each
	if got := Clip(multi); !utf8.ValidString(got) || !strings.HasPrefix(got, strings.Repeat("é", MaxEcho/2)) {
		t.Errorf("multi-byte value badly cut: %q", got)
	}
	if got := Clip("a\xffb"); got != "a?b" {
		t.Errorf("invalid UTF-8 not replaced: %q", got)
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("a\x00b\n"); got != `"a\x00b\n"` {
		t.Errorf("control characters not escaped: %s", got)
	}
	got := Quote(strings.Repeat("x", 5000))
	if len(got) > MaxEcho+32 || !strings.HasSuffix(got, `"…(5000 bytes)`) {
		t.Errorf("long value quoted to %d bytes: %s", len(got), got)
	}
}

func TestCheckControl(t *testing.T) {
	for _, ok := range []string{"", "plain text", "日本語 ok", "tab-free"} {
		if err := CheckControl(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for s, want := range map[string]string{
		"a\x00b":     "U+0000 at byte 1",
		"line\nnext": "U+000A at byte 4",
		"\x1b[31m":   "U+001B at byte 0",
		"x\u0085":    "U+0085 at byte 1",
		"del\x7f":    "U+007F at byte 3",
	} {
		err := CheckControl(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", s, err, want)
		}
	}
}

func TestHasPrefixFold(t *testing.T) {
	for s, want := range map[string]bool{
		"replicatord:policy": true, "Replicatord:x": true, "REPLICATORD:": true,
		"replicatord": false, "xreplicatord:": false, "": false,
	} {
		if got := HasPrefixFold(s, "replicatord:"); got != want {
			t.Errorf("HasPrefixFold(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCheckRequestID(t *testing.T) {
	for _, ok := range []string{"a", "pipeline-42/build:7", strings.Repeat("~", 64), "!#$%&'()*+,-./"} {
		if err := CheckRequestID(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 65), "has space", "tab\t", "nul\x00", "é", "del\x7f"} {
		if err := CheckRequestID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
