package transport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	tokenA = "tokA-4f1c9e2b7d0a6c35"
	tokenB = "tokB-9a8b7c6d5e4f3a21"
)

func TestLoadTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	content := "# ops team\n\n  " + tokenA + "  \n# ci\n" + tokenB + "\n" + tokenA + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tok.digests); n != 2 || tok.String() != "Tokens(2)" {
		t.Errorf("%d digests (%v), want 2 distinct tokens", n, tok)
	}
	for _, good := range []string{tokenA, tokenB} {
		if !tok.Valid(good) {
			t.Errorf("Valid(%q) = false", good)
		}
	}
	for _, bad := range []string{"", tokenA[:len(tokenA)-1], tokenA + "x", " " + tokenA, strings.ToUpper(tokenA), "# ops team"} {
		if tok.Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
	if s := tok.String(); strings.Contains(s, tokenA) {
		t.Errorf("String() leaks a token: %s", s)
	}
	var nilTokens *Tokens
	if nilTokens.Valid(tokenA) {
		t.Error("nil Tokens accepted a token")
	}
}

func TestLoadTokensErrors(t *testing.T) {
	dir := t.TempDir()
	secretShort := "short-secret"
	secretSpaced := "0123456789 abcdefgh"
	tests := []struct {
		name, content, want string
	}{
		{"empty", "", "no tokens"},
		{"comments only", "# nothing\n\n", "no tokens"},
		{"short", "# c\n" + secretShort + "\n", "line 2: token is 12 characters, at least 16"},
		{"space inside", secretSpaced + "\n", "line 1: a token must not contain spaces"},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadTokens(path)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: LoadTokens = %v, want an error naming %s and %q", tt.name, err, path, tt.want)
			continue
		}
		for _, secret := range []string{secretShort, "abcdefgh"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error %q shows the token", tt.name, err)
			}
		}
	}
	missing := filepath.Join(dir, "missing")
	if _, err := LoadTokens(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadTokens(""); err == nil {
		t.Error("LoadTokens(\"\") succeeded")
	}
}

// FuzzParseTokens: any input either fails cleanly or yields a set that
// accepts exactly the token lines it was given.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(tokenA + "\n" + tokenB))
	f.Add([]byte("# c\n\n" + tokenA + "\r\n"))
	f.Add([]byte("x y z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseTokens(data)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !tok.Valid(line) {
				t.Fatalf("token line %q parsed but not valid", line)
			}
		}
	})
}
