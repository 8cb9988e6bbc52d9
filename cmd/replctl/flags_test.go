package main

import (
	"context"
	"strings"
	"testing"
)

// Bad command lines exit 2 with a message naming the problem, and send
// nothing (the address points nowhere, so any call would exit 24).
func TestUsageErrors(t *testing.T) {
	const nowhere = "unix:///nonexistent/replctl-test.sock"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"jobs", "--nope"}, "unknown flag: --nope"},
		{[]string{"copy", "m-1", "--to", "b"}, `required flag(s) "from" not set`},
		{[]string{"copy", "m-1", "--from", "a"}, `required flag(s) "to" not set`},
		{[]string{"copy", "--from", "a", "--to", "b"}, "accepts 1 arg(s), received 0"},
		{[]string{"copy", "m-1", "--from", "a", "--to", ","}, "--to: give at least one destination region"},
		{[]string{"copy", "m-1", "--from", "a", "--to", "b", "--tag", "novalue"}, `bad --tag "novalue": want KEY=VALUE`},
		{[]string{"copy", "m-1", "--from", "a", "--to", "b", "--tag", "=v"}, `bad --tag "=v"`},
		{[]string{"copy", "m-1", "--from", "a", "--to", "b", "--tag", "k=1", "--tag", "k=2"}, `key "k" given twice`},
		{[]string{"copy", "m-1", "--from", "a", "--to", "b", "--kms-key", "k"}, "--kms-key needs --encrypted"},
		{[]string{"copy", "m-1", "--from", "a", "--to", "b", "--group-by", "colour"}, `bad --group-by "colour"`},
		{[]string{"-o", "xml", "jobs"}, `bad -o "xml": want table, json or yaml`},
		{[]string{"jobs", "--state", "sleeping"}, `bad --state "sleeping"`},
		{[]string{"jobs", "--limit", "-1"}, "bad --limit -1"},
		{[]string{"jobs", "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
		{[]string{"watch", "--from-revision", "-3"}, "bad --from-revision -3"},
		{[]string{"get"}, "accepts 1 arg(s), received 0"},
		{[]string{"cancel"}, "give job ids, or --image ID [--region R]"},
		{[]string{"cancel", "j-1", "--image", "m-1"}, "not both"},
		{[]string{"cancel", "--region", "r"}, "--region needs --image"},
		{[]string{"retry"}, "requires at least 1 arg(s)"},
		{[]string{"completion", "powershell"}, `invalid argument "powershell"`},
		{[]string{"--address", "http://host:1", "jobs"}, `bad --address "http://host:1": unsupported scheme "http"`},
		{[]string{"--address", "unix://", "jobs"}, "no socket path"},
		{[]string{"--address", "host", "jobs"}, "not host:port"},
		{[]string{"--address", "host:99999", "jobs"}, "port must be a number"},
		{[]string{"--address", "unix:///" + strings.Repeat("d", 120) + ".sock", "jobs"}, "longer than the 107 a unix socket allows"},
		{[]string{"--address", "127.0.0.1:1", "--insecure", "--cacert", "ca.pem", "jobs"}, "--insecure contradicts the TLS flags"},
		{[]string{"--address", "127.0.0.1:1", "--insecure", "--token", "t", "jobs"}, "refusing to send the bearer token over plaintext TCP"},
		{[]string{"--address", "127.0.0.1:1", "--cert", "c.pem", "jobs"}, "needs its key (--key)"},
		{[]string{"--address", "127.0.0.1:1", "--cacert", "/nonexistent/ca.pem", "jobs"}, "cannot read CA certificate /nonexistent/ca.pem"},
		{[]string{"--cacert", "/nonexistent/ca.pem", "jobs"}, "cannot read CA certificate"}, // TLS on the socket too
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := tc.args
			if !strings.HasPrefix(args[0], "--address") {
				args = append([]string{"--address", nowhere}, args...)
			}
			res := runReplctl(t, context.Background(), nil, args...)
			if res.code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %q", res.code, exitUsage, res.stderr)
			}
			if !strings.HasPrefix(res.stderr, "replctl: ") || !strings.Contains(res.stderr, tc.want) {
				t.Errorf("stderr %q, want it to contain %q", res.stderr, tc.want)
			}
			if !strings.Contains(res.stderr, "--help' for usage.") {
				t.Errorf("stderr should point to --help: %q", res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout should be empty, got %q", res.stdout)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]target{
		"unix:///run/r.sock":                   {unix: true, path: "/run/r.sock"},
		"unix://.replicatord/replicatord.sock": {unix: true, path: ".replicatord/replicatord.sock"},
		"unix:rel.sock":                        {unix: true, path: "rel.sock"},
		"127.0.0.1:7070":                       {host: "127.0.0.1:7070"},
		"[::1]:7070":                           {host: "[::1]:7070"},
		"replicatord.internal:443":             {host: "replicatord.internal:443"},
	} {
		got, err := parseAddress(in)
		if err != nil || got != want {
			t.Errorf("parseAddress(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}
