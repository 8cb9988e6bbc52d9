// Package input holds the rules every edge of replicatord (the gRPC
// server, the policy file, replctl) applies to untrusted text: how much of
// it is echoed back in errors and logs, and which characters are refused in
// what is sent to ECS. One place, so the edges cannot drift apart.
//
// Echoing: an error names the value at fault, but only its first MaxEcho
// bytes — a 1 MB region string must not become a 1 MB gRPC error and log
// line. Control characters: ECS names, descriptions and tags are shown in
// consoles and logs, where a NUL, an escape sequence or a newline is at
// best noise and at worst log injection, so replicatord refuses them
// (U+0000-U+001F, U+007F-U+009F) instead of sending them.
package input

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxEcho is how many bytes of a value errors and logs repeat.
const MaxEcho = 200

// Clip returns s cut to at most MaxEcho bytes at a character boundary,
// with invalid UTF-8 replaced by "?", followed by "…(N bytes)" when it was
// cut. Use it (or Quote) wherever input is echoed.
func Clip(s string) string {
	if len(s) <= MaxEcho {
		return strings.ToValidUTF8(s, "?")
	}
	cut := MaxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "?") + fmt.Sprintf("…(%d bytes)", len(s))
}

// Quote is Clip in Go quotes, with control characters escaped: the form
// for messages that show a value as it was given.
func Quote(s string) string {
	if len(s) <= MaxEcho {
		return strconv.Quote(strings.ToValidUTF8(s, "?"))
	}
	cut := MaxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(strings.ToValidUTF8(s[:cut], "?")) + fmt.Sprintf("…(%d bytes)", len(s))
}

// CheckControl returns an error naming the first control character in s
// and where it is, or nil when there is none. The message follows the
// value's name: "description contains ...".
func CheckControl(s string) error {
	for i, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("contains the control character %U at byte %d (control characters, NUL included, are not allowed)", r, i)
		}
	}
	return nil
}

// HasPrefixFold reports whether s starts with prefix, ignoring case, as
// ECS compares reserved prefixes (aliyun, acs:) and as replicatord guards
// its own (replicatord:).
func HasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// MaxRequestID is the longest request id (ECS's ClientToken allows 64).
const MaxRequestID = 64

// CheckRequestID returns why id is not a client request id, or nil: 1 to
// 64 printable ASCII characters other than space (0x21-0x7E), like ECS's
// ClientToken.
func CheckRequestID(id string) error {
	if id == "" || len(id) > MaxRequestID {
		return fmt.Errorf("must be 1 to %d characters, got %d", MaxRequestID, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("must be printable ASCII without spaces (0x21-0x7E); byte %d is %#02x", i, c)
		}
	}
	return nil
}
