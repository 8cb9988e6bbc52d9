package transport

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinTokenLength is the shortest bearer token accepted in a token file. A
// guessable token is worse than none because it looks like protection.
const MinTokenLength = 16

// Tokens is a set of accepted bearer tokens. Only SHA-256 digests are kept,
// so a memory dump or a stray %v does not print the tokens themselves.
type Tokens struct {
	digests [][sha256.Size]byte
}

// LoadTokens reads a token file: one token a line, blank lines and lines
// starting with # ignored, surrounding spaces trimmed. Errors name the file
// and line but never the token.
func LoadTokens(path string) (*Tokens, error) {
	if path == "" {
		return nil, errors.New("token file: no path given")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return t, nil
}

// ParseTokens parses the contents of a token file (see LoadTokens).
func ParseTokens(data []byte) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsFunc(line, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, fmt.Errorf("line %d: a token must not contain spaces or control characters", n)
		}
		if len(line) < MinTokenLength {
			return nil, fmt.Errorf("line %d: token is %d characters, at least %d are required", n, len(line), MinTokenLength)
		}
		d := sha256.Sum256([]byte(line))
		if !seen[d] {
			seen[d] = true
			t.digests = append(t.digests, d)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w (is a line longer than 64 KiB?)", err)
	}
	if len(t.digests) == 0 {
		return nil, errors.New("no tokens in it (one token a line; # starts a comment)")
	}
	return t, nil
}

// Valid reports whether token is one of the set. It compares fixed-size
// digests with crypto/subtle and visits every entry, so the time taken
// depends neither on where the tokens differ, nor on their lengths, nor on
// which entry matched.
func (t *Tokens) Valid(token string) bool {
	if t == nil || token == "" {
		return false
	}
	d := sha256.Sum256([]byte(token))
	ok := 0
	for i := range t.digests {
		ok |= subtle.ConstantTimeCompare(d[:], t.digests[i][:])
	}
	return ok == 1
}

// String never shows tokens.
func (t *Tokens) String() string { return fmt.Sprintf("Tokens(%d)", len(t.digests)) }
