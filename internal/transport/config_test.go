package transport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateRejectsContradictions(t *testing.T) {
	tests := []struct {
		name string
		cfg  ServerConfig
		want string
	}{
		{"cert without key", ServerConfig{Address: "127.0.0.1:1", TLSCert: "c.pem"}, "--tls-key"},
		{"key without cert", ServerConfig{Address: "127.0.0.1:1", TLSKey: "k.pem"}, "--tls-cert"},
		{"client CA without TLS", ServerConfig{Address: "/x.sock", ClientCA: "ca.pem"}, "needs a server certificate"},
		{"insecure and TLS", ServerConfig{Address: "127.0.0.1:1", Insecure: true, TLSCert: "c", TLSKey: "k"}, "contradict"},
		{"token on plaintext TCP", ServerConfig{Address: "127.0.0.1:1", Insecure: true, TokenFile: "t"}, "clear text"},
		{"bad address", ServerConfig{Address: "nohostport"}, "nohostport"},
		{"negative size", ServerConfig{Address: "/x.sock", MaxRecvMsgSize: -1}, "negative"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	for _, ok := range []ServerConfig{
		{},
		{Address: "/x.sock", TokenFile: "t"},
		{Address: "127.0.0.1:1", TLSCert: "c", TLSKey: "k", ClientCA: "ca", TokenFile: "t"},
		{Address: "127.0.0.1:1", Insecure: true},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", ok, err)
		}
	}
}

func TestReflectionDefaults(t *testing.T) {
	on, off := true, false
	tests := []struct {
		cfg  ServerConfig
		want bool
	}{
		{ServerConfig{}, true},
		{ServerConfig{Address: "/r.sock"}, true},
		{ServerConfig{Address: "127.0.0.1:7070"}, false},
		{ServerConfig{Address: "127.0.0.1:7070", Reflection: &on}, true},
		{ServerConfig{Address: "/r.sock", Reflection: &off}, false},
	}
	for _, tt := range tests {
		if got := tt.cfg.ReflectionEnabled(); got != tt.want {
			t.Errorf("ReflectionEnabled(%q, %v) = %v, want %v", tt.cfg.Address, tt.cfg.Reflection, got, tt.want)
		}
	}
}

func TestWarningsReportReadableTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig{Address: "/r.sock", TokenFile: path}
	w := cfg.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], path) || !strings.Contains(w[0], "0644") {
		t.Fatalf("Warnings() = %q, want one about %s being 0644", w, path)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Fatalf("Warnings() for a 0600 token file = %q", w)
	}
}
