package policy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStoreDefaultIsBbolt(t *testing.T) {
	f, err := Parse("", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if f.Store.Backend != BackendBbolt {
		t.Fatalf("store backend = %q, want bbolt by default", f.Store.Backend)
	}
}

func TestParseStoreEtcd(t *testing.T) {
	f, err := Parse("/etc/replicatord/policies.yaml", []byte(`version: 1
store:
  backend: etcd
  etcd:
    endpoints: [https://etcd-0:2379, "etcd-1:2379"]
    prefix: /fleet-a
    lease_ttl: 3s
    max_txn_ops: 1024
    tls: {ca_file: ca.pem, cert_file: /tls/client.pem, key_file: client-key.pem}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := f.Store.Etcd
	if f.Store.Backend != BackendEtcd || len(e.Endpoints) != 2 || e.Prefix != "/fleet-a/" || e.LeaseTTL != 3*time.Second ||
		e.MaxTxnOps != 1024 || e.DialTimeout != DefaultEtcdDialTimeout || e.Insecure {
		t.Fatalf("store = %+v", f.Store)
	}
	if e.TLS.CAFile != filepath.FromSlash("/etc/replicatord/ca.pem") || e.TLS.CertFile != "/tls/client.pem" || e.TLS.KeyFile != filepath.FromSlash("/etc/replicatord/client-key.pem") {
		t.Fatalf("tls paths not resolved against the file's directory: %+v", e.TLS)
	}
	g, err := Parse("", []byte("version: 1\nstore: {backend: etcd, etcd: {endpoints: [\"http://127.0.0.1:2379\"], insecure: true}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e := g.Store.Etcd; !e.Insecure || e.Prefix != DefaultEtcdPrefix || e.LeaseTTL != DefaultEtcdLeaseTTL || e.MaxTxnOps != DefaultEtcdMaxTxnOps {
		t.Fatalf("insecure store with defaults = %+v", e)
	}
}

func TestParseStoreErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want []string
	}{
		{"unknown backend", "version: 1\nstore: {backend: zookeeper}\n", []string{
			`policies.yaml:2:18: store.backend: "zookeeper" is not one of bbolt, etcd`}},
		{"etcd without section", "version: 1\nstore: {backend: etcd}\n", []string{
			`policies.yaml:2:8: store.backend etcd needs store.etcd with at least endpoints`}},
		{"etcd section with bbolt", "version: 1\nstore:\n  etcd: {endpoints: [\"e:2379\"]}\n", []string{
			`policies.yaml:3:9: store.etcd is only for backend etcd (set store.backend: etcd, or remove store.etcd)`}},
		{"no endpoints", "version: 1\nstore:\n  backend: etcd\n  etcd: {endpoints: []}\n", []string{
			`policies.yaml:4:9: store.etcd.endpoints is missing or empty; list the etcd client URLs, like [https://etcd-0:2379]`}},
		{"plain http without insecure", "version: 1\nstore:\n  backend: etcd\n  etcd: {endpoints: [\"http://etcd:2379\"]}\n", []string{
			`policies.yaml:4:22: store.etcd.endpoints[0]: "http://etcd:2379" is plain HTTP: the etcd password and every job would travel unencrypted; use https:// (the default is TLS), or set store.etcd.insecure: true for a test cluster`}},
		{"tls endpoint with insecure", "version: 1\nstore:\n  backend: etcd\n  etcd: {endpoints: [\"https://etcd:2379\"], insecure: true}\n", []string{
			`policies.yaml:4:22: store.etcd.endpoints[0]: "https://etcd:2379" is TLS but store.etcd.insecure is true; write it as http://host:port, or remove insecure`}},
		{"insecure with tls", "version: 1\nstore:\n  backend: etcd\n  etcd: {endpoints: [\"http://e:2379\"], insecure: true, tls: {ca_file: ca.pem}}\n", []string{
			`policies.yaml:4:50: store.etcd.insecure: true turns TLS off, and store.etcd.tls is set; keep one`}},
		{"bad values", "version: 1\nstore:\n  backend: etcd\n  etcd:\n    endpoints: [\"etcd\", \"ftp://e:1\", \"https://u:p@e:2379\"]\n    prefix: fleet\n    dial_timeout: 2h\n    lease_ttl: 1500ms\n    tls: {cert_file: c.pem}\n    max_txn_ops: 4\n", []string{
			`policies.yaml:5:17: store.etcd.endpoints[0]: "etcd" has no port (etcd's client port is usually 2379)`,
			`policies.yaml:5:25: store.etcd.endpoints[1]: "ftp://e:1" is not an http(s)://host:port URL or host:port`,
			`policies.yaml:5:38: store.etcd.endpoints[2]: the endpoint must not hold credentials (they come from REPLICATORD_ETCD_USERNAME and REPLICATORD_ETCD_PASSWORD)`,
			`policies.yaml:6:13: store.etcd.prefix: "fleet" must start with "/" and name a key prefix, like /replicatord/`,
			`policies.yaml:7:19: store.etcd.dial_timeout: 2h0m0s is out of range (must be from 100ms to 1m0s)`,
			`policies.yaml:8:16: store.etcd.lease_ttl: 1.5s must be whole seconds from 2s to 1m0s (etcd leases count in seconds)`,
			`policies.yaml:9:22: store.etcd.tls: cert_file and key_file go together (a client certificate needs its key)`,
			`policies.yaml:10:18: store.etcd.max_txn_ops: 4 is out of range (must be between 5 and 1048576)`,
		}},
		{"max_txn_ops not an integer", "version: 1\nstore:\n  backend: etcd\n  etcd: {endpoints: [\"e:2379\"], max_txn_ops: 12.5}\n", []string{
			`policies.yaml:4:46: store.etcd.max_txn_ops: expected an integer, got "12.5"`,
		}},
		{"password in file", "version: 1\nstore:\n  backend: etcd\n  etcd: {endpoints: [\"e:2379\"], password: hunter2}\n", []string{
			`policies.yaml:4:33: key "password" holds a secret; ` + credentialHint,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errLines(t, tc.data)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, l := range got {
				if strings.Contains(l, "hunter2") {
					t.Errorf("a secret is echoed: %s", l)
				}
			}
		})
	}
}
