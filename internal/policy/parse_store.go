package policy

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Store says where the daemon keeps its jobs. It changes only with a
// restart: a reload that changes it is refused.
type Store struct {
	Backend string // bbolt | etcd
	Etcd    Etcd   // for backend etcd only
}

// Store backends.
const (
	BackendBbolt = "bbolt"
	BackendEtcd  = "etcd"
)

// Etcd is the etcd cluster of a replicated deployment. The username and
// password come from the environment (REPLICATORD_ETCD_USERNAME and
// REPLICATORD_ETCD_PASSWORD), never from the file.
type Etcd struct {
	// Endpoints are https://host:port URLs or host:port (TLS); http:// only
	// with Insecure.
	Endpoints []string
	// Prefix is where the store's keys live; it ends in "/".
	Prefix      string
	DialTimeout time.Duration
	// LeaseTTL is the leader's session lease: how long a leader that
	// stopped answering keeps leadership, and so the longest failover.
	LeaseTTL time.Duration
	// MaxTxnOps is the cluster's --max-txn-ops: a policy run's jobs are
	// stored in transactions within it, and a Copy to more destinations
	// than one transaction holds is refused, storing nothing.
	MaxTxnOps int
	TLS       EtcdTLS
	// Insecure allows plain-HTTP endpoints (no TLS): the password and
	// every job travel unencrypted. For tests and a loopback etcd only.
	Insecure bool
}

// EtcdTLS holds the client's TLS files; a relative path is relative to the
// policy file's directory. CAFile empty: the system's roots.
type EtcdTLS struct {
	CAFile, CertFile, KeyFile string
}

// Defaults and bounds of store.etcd.
const (
	DefaultEtcdPrefix      = "/replicatord/"
	DefaultEtcdDialTimeout = 5 * time.Second
	DefaultEtcdLeaseTTL    = 5 * time.Second
	MinEtcdLeaseTTL        = 2 * time.Second
	MaxEtcdLeaseTTL        = time.Minute
	// etcd's own default --max-txn-ops; the least that holds one job's
	// create (its three operations, the change key and the leader's fence).
	DefaultEtcdMaxTxnOps = 128
	MinEtcdMaxTxnOps     = 5
	MaxEtcdMaxTxnOps     = 1 << 20
)

func defaultStore() Store {
	return Store{Backend: BackendBbolt, Etcd: Etcd{Prefix: DefaultEtcdPrefix, DialTimeout: DefaultEtcdDialTimeout, LeaseTTL: DefaultEtcdLeaseTTL, MaxTxnOps: DefaultEtcdMaxTxnOps}}
}

// store decodes the store section.
func (d *decoder) store(n *yaml.Node, sc scope, o *Store) {
	var etcdNode *yaml.Node
	d.mapping(n, sc, fields{
		"backend": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.Backend)
			if !d.oneOf(v, ks, o.Backend, BackendBbolt, BackendEtcd) {
				o.Backend = ""
			}
		},
		"etcd": func(_, v *yaml.Node, ks scope) { etcdNode = d.resolve(v); d.etcd(v, ks, &o.Etcd) },
	})
	switch {
	case o.Backend == BackendBbolt && etcdNode != nil:
		d.errorf(etcdNode, sc, "store.etcd is only for backend etcd (set store.backend: etcd, or remove store.etcd)")
	case o.Backend == BackendEtcd && etcdNode == nil:
		d.errorf(d.resolve(n), sc, "store.backend etcd needs store.etcd with at least endpoints")
	}
}

func (d *decoder) etcd(n *yaml.Node, sc scope, o *Etcd) {
	var epNodes []*yaml.Node
	var tlsNode, insecureNode *yaml.Node
	seen := d.mapping(n, sc, fields{
		"endpoints": func(_, v *yaml.Node, ks scope) {
			o.Endpoints, epNodes = d.strList(v, ks)
			for i, ep := range o.Endpoints {
				if err := checkEtcdEndpoint(ep); err != nil {
					d.fieldErrorf(epNodes[i], ks.index(i), "%v", err)
				}
			}
		},
		"prefix": func(_, v *yaml.Node, ks scope) {
			d.str(v, ks, &o.Prefix)
			switch {
			case !strings.HasPrefix(o.Prefix, "/") || len(o.Prefix) < 2:
				d.fieldErrorf(d.resolve(v), ks, "%s must start with \"/\" and name a key prefix, like %s", quote(o.Prefix), DefaultEtcdPrefix)
			case strings.ContainsAny(o.Prefix, "\x00 "):
				d.fieldErrorf(d.resolve(v), ks, "%s must not hold spaces or NUL", quote(o.Prefix))
			case !strings.HasSuffix(o.Prefix, "/"):
				o.Prefix += "/"
			}
		},
		"dial_timeout": d.durationIn(&o.DialTimeout, 100*time.Millisecond, time.Minute),
		"lease_ttl": func(_, v *yaml.Node, ks scope) {
			if !d.duration(v, ks, &o.LeaseTTL) {
				return
			}
			if o.LeaseTTL < MinEtcdLeaseTTL || o.LeaseTTL > MaxEtcdLeaseTTL || o.LeaseTTL%time.Second != 0 {
				d.fieldErrorf(d.resolve(v), ks, "%s must be whole seconds from %s to %s (etcd leases count in seconds)", o.LeaseTTL, MinEtcdLeaseTTL, MaxEtcdLeaseTTL)
			}
		},
		"max_txn_ops": func(_, v *yaml.Node, ks scope) {
			var n int64
			if d.intIn(v, ks, MinEtcdMaxTxnOps, MaxEtcdMaxTxnOps, &n) {
				o.MaxTxnOps = int(n)
			}
		},
		"insecure": func(_, v *yaml.Node, ks scope) { insecureNode = d.resolve(v); d.boolean(v, ks, &o.Insecure) },
		"tls":      func(_, v *yaml.Node, ks scope) { tlsNode = d.resolve(v); d.etcdTLS(v, ks, &o.TLS) },
	})
	if n = d.resolve(n); n == nil || n.Kind != yaml.MappingNode {
		return
	}
	if _, ok := seen["endpoints"]; !ok || len(o.Endpoints) == 0 {
		d.errorf(n, sc, "store.etcd.endpoints is missing or empty; list the etcd client URLs, like [https://etcd-0:2379]")
	}
	if o.Insecure && tlsNode != nil {
		d.errorf(insecureNode, sc, "store.etcd.insecure: true turns TLS off, and store.etcd.tls is set; keep one")
	}
	for i, ep := range o.Endpoints {
		secure := !hasHTTP(ep)
		switch {
		case o.Insecure && secure:
			d.errorf(epNodes[i], sc, "store.etcd.endpoints[%d]: %s is TLS but store.etcd.insecure is true; write it as http://host:port, or remove insecure", i, quote(ep))
		case !o.Insecure && !secure:
			d.errorf(epNodes[i], sc, "store.etcd.endpoints[%d]: %s is plain HTTP: the etcd password and every job would travel unencrypted; use https:// (the default is TLS), or set store.etcd.insecure: true for a test cluster", i, quote(ep))
		}
	}
}

func (d *decoder) etcdTLS(n *yaml.Node, sc scope, o *EtcdTLS) {
	var certNode *yaml.Node
	d.mapping(n, sc, fields{
		"ca_file":   func(_, v *yaml.Node, ks scope) { d.nonEmpty(v, ks, &o.CAFile) },
		"cert_file": func(_, v *yaml.Node, ks scope) { certNode = d.resolve(v); d.nonEmpty(v, ks, &o.CertFile) },
		"key_file": func(_, v *yaml.Node, ks scope) {
			if certNode == nil {
				certNode = d.resolve(v)
			}
			d.nonEmpty(v, ks, &o.KeyFile)
		},
	})
	if (o.CertFile == "") != (o.KeyFile == "") {
		d.errorf(certNode, sc, "store.etcd.tls: cert_file and key_file go together (a client certificate needs its key)")
	}
}

func (d *decoder) nonEmpty(n *yaml.Node, sc scope, out *string) {
	d.str(n, sc, out)
	if *out == "" {
		d.fieldErrorf(d.resolve(n), sc, "must not be empty")
	}
}

// checkEtcdEndpoint accepts http(s)://host:port and host:port.
func checkEtcdEndpoint(s string) error {
	host := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("%s is not an http(s)://host:port URL or host:port", quote(s))
		}
		if u.User != nil {
			return fmt.Errorf("the endpoint must not hold credentials (they come from REPLICATORD_ETCD_USERNAME and REPLICATORD_ETCD_PASSWORD)")
		}
		host = u.Host
	}
	if _, port, err := net.SplitHostPort(host); err != nil || port == "" {
		return fmt.Errorf("%s has no port (etcd's client port is usually 2379)", quote(s))
	}
	return nil
}

func hasHTTP(ep string) bool {
	return len(ep) > 7 && strings.EqualFold(ep[:7], "http://")
}

// resolvePaths makes the store's relative TLS paths relative to the
// file's directory, as data_dir is.
func (o *Store) resolvePaths(dir string) {
	for _, p := range []*string{&o.Etcd.TLS.CAFile, &o.Etcd.TLS.CertFile, &o.Etcd.TLS.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}
