package transport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      string
		network string
		address string
	}{
		{"", "unix", DefaultSocket},
		{"unix:///run/r.sock", "unix", "/run/r.sock"},
		{"unix:rel/r.sock", "unix", filepath.Join(wd, "rel/r.sock")},
		{"/var/run/x", "unix", "/var/run/x"},
		{"./x.sock", "unix", filepath.Join(wd, "x.sock")},
		{"x.sock", "unix", filepath.Join(wd, "x.sock")},
		{"127.0.0.1:7070", "tcp", "127.0.0.1:7070"},
		{"[::1]:7070", "tcp", "[::1]:7070"},
		{":7070", "tcp", ":7070"},
		{"daemon.example.com:443", "tcp", "daemon.example.com:443"},
	}
	for _, tt := range tests {
		ep, err := ParseAddress(tt.in)
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", tt.in, err)
			continue
		}
		if ep.Network != tt.network || ep.Address != tt.address {
			t.Errorf("ParseAddress(%q) = %+v, want %s %s", tt.in, ep, tt.network, tt.address)
		}
	}
}

func TestParseAddressErrors(t *testing.T) {
	for _, in := range []string{"localhost", "host:", "unix://", "a:b:c"} {
		_, err := ParseAddress(in)
		if err == nil {
			t.Errorf("ParseAddress(%q) succeeded", in)
			continue
		}
		if !strings.Contains(err.Error(), in) {
			t.Errorf("ParseAddress(%q) error %q does not name the address", in, err)
		}
	}
}

func TestEndpointStringIsAGRPCTarget(t *testing.T) {
	if got := (Endpoint{Network: "unix", Address: "/a/b.sock"}).String(); got != "unix:///a/b.sock" {
		t.Errorf("unix target %q", got)
	}
	if got := (Endpoint{Network: "tcp", Address: "h:1"}).String(); got != "h:1" {
		t.Errorf("tcp target %q", got)
	}
}
